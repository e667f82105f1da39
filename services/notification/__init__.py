"""The notification service: emails every registration and funding outcome to the Kommune."""
