"""The look inside a model: unit activations, the HTML report's data, play."""
