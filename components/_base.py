"""Shared component settings: the image every component runs in."""

import functools

from kfp import dsl

from credit_risk.release import images

# Our image carries kfp and the package from locks/pipeline.txt: nothing is installed at run time.
# `credit-risk compile --registry/--tag` rewrites this image in the compiled YAML.
component = functools.partial(dsl.component, base_image=images.pipeline_image(), install_kfp_package=False)
