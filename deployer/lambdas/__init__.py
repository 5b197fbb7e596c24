"""Lambda handlers; each zip holds one handler module and the shared modules it imports (deployer.package)."""
