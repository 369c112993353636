"""The application: command line, local runs, submits to Kubeflow, image builds."""
