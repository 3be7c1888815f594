"""An ms-swift plugin (`swift sft --external_plugins FILE`) that turns `datasets` caching off.

ms-swift up to 3.4.0 did this itself; from 3.4.1 on, a job gets the same behaviour only from a
plugin or script like this one. With caching off every rank writes its own `hf_datasets-*`
directory under `$MODELSCOPE_CACHE/tmp` (default `~/.cache/modelscope/hub/tmp`) and removes it
when the process exits: the per-rank copies rankfs stores once.

RANKFS_KEEP_HF_DATASETS=DIR (for the tests): local rank 0 copies its own `hf_datasets-*`
directory into DIR at exit, before the directory is removed, so a test can measure what one
rank's copy costs. The directory is removed by a weakref.finalize run at exit; Python runs exit
handlers last-registered first, so the plugin makes sure finalize's handler is registered
(creating a finalizer registers it) before registering its own.
"""
import atexit
import os
import shutil
import weakref

import datasets

datasets.disable_caching()


def _keep_own_copy(dest):
    from swift.dataset.utils import TEMP_DIR_POOL  # this process's temporary directories

    for tmp in TEMP_DIR_POOL.values():
        shutil.copytree(tmp.name, os.path.join(dest, os.path.basename(tmp.name)))
    os.write(1, b"\nkept_hf_datasets=%d\n" % len(TEMP_DIR_POOL))  # one line, one write(2)


if os.environ.get("RANKFS_KEEP_HF_DATASETS") and os.environ.get("LOCAL_RANK", "0") == "0":
    weakref.finalize(_keep_own_copy, lambda: None)  # registers finalize's exit handler first
    atexit.register(_keep_own_copy, os.environ["RANKFS_KEEP_HF_DATASETS"])
