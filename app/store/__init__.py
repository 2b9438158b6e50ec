"""The console's own database: its models, migrations, audit log and the settings stored in it."""
