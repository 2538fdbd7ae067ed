"""`manage.py run_batch`'s parts beside the command (batches/management/commands/run_batch.py):
its console output (console) and what it keeps while it runs (running)."""
