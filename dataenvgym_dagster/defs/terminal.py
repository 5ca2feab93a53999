"""The console logger of every job, with failures in one line: the full error stays in the run's log.

Dagster's default console logger prints a failed step's whole error chain and stack trace; on a
terminal that buries the one line a user needs (``dataenvgym run`` ends with it, see
``defs/failures.py``). This one prints the same lines, but an error's first line only. The run's
event log, which the UI shows, keeps every event with its full trace.
"""

from __future__ import annotations

import logging

from dagster import logger
from dagster._loggers import colored_console_logger

TRACE_NOTE = " (full trace in the run's log)"


class FirstLineOfErrors(logging.Filter):
    """Cut error records to their first line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            message = record.getMessage()
            if "\n" in message:
                record.msg, record.args = message.split("\n", 1)[0] + TRACE_NOTE, ()
        return True


@logger(colored_console_logger.config_schema, description="The colored console logger, with an error's first line only.")
def console(init_context) -> logging.Logger:
    python_logger = colored_console_logger.logger_fn(init_context)
    for handler in python_logger.handlers:
        handler.addFilter(FirstLineOfErrors())
    return python_logger
