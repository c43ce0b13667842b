"""The job core: what the HTTP API and the workers share, importing neither of them.

settings (the one reader of the environment) · storage (local folder or S3) · keys (every
storage key and id) · records (job, stylisation and experiment records and their state
machine) · jobs (every change of a record, as a compare-and-set) · submit (creating jobs and
experiments, all or nothing) · queue (task names, queues, the Celery producer) · protocol
(the supervisor <-> child files and exit codes) · errors (domain errors).
"""
