"""What every capability stands on: settings, errors, tables, storage, migrations, events and
reply classes."""
