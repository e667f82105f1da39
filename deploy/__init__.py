"""Deployment: local provisioning without Docker, and the image for Docker Compose."""
