"""Event contracts and infrastructure helpers shared by the Digitallotsen services."""
