"""Phone calls: carrier accounts, phone numbers and the carriers' media-stream transports."""
