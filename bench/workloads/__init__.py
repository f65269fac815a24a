"""The benchmark's workloads; bench/run.py runs them in order after django.setup()."""
