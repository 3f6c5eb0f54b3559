"""Device drivers: serial scales, ESL gateways, cameras. Never imports ``agent``."""
