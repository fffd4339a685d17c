"""The model: torch and numpy networks, the loss, devices and precision."""
