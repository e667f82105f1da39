"""The Digitallotsen services."""
