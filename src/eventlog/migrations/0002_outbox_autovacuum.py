from django.db import migrations

# The outbox is a queue: every row is inserted, updated once and deleted within days. The default
# autovacuum threshold (20% of the table dead) lets such a table bloat; vacuum it at 2%.
TUNE = """
ALTER TABLE eventlog_outbox_event SET (
    autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02
)
"""
RESET = "ALTER TABLE eventlog_outbox_event RESET (autovacuum_vacuum_scale_factor, autovacuum_analyze_scale_factor)"


class Migration(migrations.Migration):
    dependencies = [("eventlog", "0001_initial")]
    operations = [migrations.RunSQL(TUNE, RESET)]
