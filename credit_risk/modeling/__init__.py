"""The wide-and-deep model: its graph, the streamed training input, training, scoring."""
