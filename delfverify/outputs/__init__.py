"""The output layer: everything delfverify writes is planned before the work starts, then written by one call.

**Planning** (``OutputPlan``: one per command or one-call function, before any work). Each output is resolved to
what it is and where it really leads (symbolic links followed), and refused with one line, naming it and the
remedy, when it

- is, or leads to, an input (the same file through any path, symbolic or hard link) or another output;
- lies in an image folder (a photo, or any file among them), or is a folder that holds an input or an image
  folder;
- cannot be written: a directory, a block device (a disk) or a socket, a file where a folder should be, no
  permission, a read-only file system, a name too long for its file system;
- is a folder the tool writes into that it did not make itself (``OwnedFolder``: no manifest of the tool's
  inside, or a symbolic link in its place). Like ``git clean``, which removes only untracked files it can name,
  the tool removes only files its own manifest lists. Such a folder is locked from planning until it is written
  (``FolderLock``), so a second run writing the same report is refused at once, and two runs never mix their files.

What an output is decides how it is written (``Output.kind``):

- ``FILE``: a regular file, or nothing yet: replaced atomically (a temporary file beside it, flushed to disk,
  then renamed over it), written where symbolic links lead. A new file gets the permissions a plain write gives
  it (``0666`` less the umask); a replaced one keeps its permission bits. Missing folders are created.
- ``STREAM``: a character device or a FIFO (``/dev/null``, a named pipe): written into, never replaced, created
  or truncated. A FIFO without a reader is waited for, as a shell's ``>`` waits, with a warning.
- ``DESCRIPTOR``: ``-`` (standard output), ``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N`` or
  ``/proc/self/fd/N``: written into that descriptor of this process.

**Writing** (``write_outputs``, which every writer calls; ``write_output`` for one): all or nothing. Every file is
first written whole to its temporary file (the data is encoded in memory before), then the streams, and only then
are the files renamed into place. Any failure (no space, no permission, a name too long, a file in the way) is
one ``OutputError`` naming the file, the reason and the remedy: every earlier file is intact, and no temporary
file, nor any folder the call created, is left.
"""

from .plan import (DESCRIPTOR, FILE, JOURNAL_SIDECARS, MANIFEST, STREAM, Output, OutputError, OutputPlan,
                   OwnedFolder, PathArg, goes_to_stdout)
from .write import as_output, write_output, write_outputs

__all__ = ["DESCRIPTOR", "FILE", "JOURNAL_SIDECARS", "MANIFEST", "STREAM", "Output", "OutputError", "OutputPlan",
           "OwnedFolder", "PathArg", "as_output", "goes_to_stdout", "write_output", "write_outputs"]
