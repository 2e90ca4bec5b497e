"""Serverless benchmarking: LoadGen on the host drives functions through object storage
(AWS Lambda + S3, or local functions fed by the same S3 events)."""
