"""The dataset's contract: the feature spec, the request contract, the one typing rule, the rating scale."""
