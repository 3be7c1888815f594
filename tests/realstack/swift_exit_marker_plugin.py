"""An ms-swift plugin (`swift sft --external_plugins FILE`) that changes nothing in the job and
prints, per rank, how far the process got through a normal exit, so that a test can tell a
rank that failed from one that aborted in interpreter teardown after its work was done.

torch and ms-swift sometimes abort one rank at teardown ("terminate called without an active
exception", SIGABRT) after training finished. Python runs exit handlers only once the main
program has returned, so:
  rank<R>_exit_begin=<dirs>  main returned; <dirs> are this rank's hf_datasets-* directories
                             (ms-swift's temporary cache directories, comma-separated, or "-")
  rank<R>_exit_end=1         those directories' finalizers have run (they are removed)
The second comes from a finalizer created at import, before any temporary directory exists;
Python runs finalizers at exit newest first, so it runs after theirs.
"""
import atexit
import os
import weakref

_RANK = os.environ.get("RANK", "0")


def _say(line):
    # One write(2) per line: four ranks share the log, and print() writes the text and its
    # newline separately, so lines of different ranks could run together. The newline before
    # it ends whatever a progress bar left unfinished.
    os.write(1, ("\n" + line + "\n").encode())


def _own_dirs():
    try:
        from swift.dataset.utils import TEMP_DIR_POOL
    except ImportError:
        return "-"
    return ",".join(os.path.basename(t.name) for t in TEMP_DIR_POOL.values()) or "-"


def _begin():
    _say("rank%s_exit_begin=%s" % (_RANK, _own_dirs()))


class _Sentinel:
    pass


_sentinel = _Sentinel()  # alive until exit, so its finalizer runs from the exit handler
weakref.finalize(_sentinel, _say, "rank%s_exit_end=1" % _RANK)
atexit.register(_begin)
