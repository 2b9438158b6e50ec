"""Thin adapters to outside tools: S3 and folder stores, PostgreSQL and its client tools, age, Apprise,
rate limits. They import nothing of the console; every value comes in as an argument."""
