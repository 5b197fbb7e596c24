"""The local stand-in for AWS: an embedded emulator (control plane) and a compute plane that runs the work."""
