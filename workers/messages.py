"""The API <-> worker contract: task names, queues and payloads. Nothing heavy is imported
here: the API sends a task name and a job id; the worker loads the rest from the store."""

TRAIN_QUEUE = "train"
STYLIZE_QUEUE = "stylize"
TRAIN_TASK = "checkerless.train"
STYLIZE_TASK = "checkerless.stylize"
QUEUES = (TRAIN_QUEUE, STYLIZE_QUEUE)
ROUTES = {TRAIN_TASK: TRAIN_QUEUE, STYLIZE_TASK: STYLIZE_QUEUE}
