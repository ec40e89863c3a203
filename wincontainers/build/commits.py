"""``commit``: a stopped container's changes become a layer, and a new image over its image.

The container's sandbox is exported (its changes since it was created, deletions included),
kept as a blob, imported as a read-only layer, and an image config derived from the parent's
(plus ``changes`` such as ``CMD [...]``) is recorded with its tag. A running container is refused
and left untouched, unless ``stop=True``: then it is stopped (graceful, then forced), committed,
and with ``restart=True`` started again, detached (its monitor keeps the main process's output
for ``logs``). When a step fails nothing new is left in the store
(``fsck`` stays clean) and :class:`CommitFailed` says which step failed and what state the
container is in.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

from wincontainers import errors
from wincontainers.build.instructions import Cmd, Command, apply_to_config, parse_changes
from wincontainers.images.config import derive_config
from wincontainers.images.store import Image, ImageStore, LayerRecord
from wincontainers.progress import ProgressLike, operation_progress
from wincontainers.rollback import Rollback

if TYPE_CHECKING:
    from wincontainers.container import Container
    from wincontainers.host import Host

log = logging.getLogger("wincontainers.build")

__all__ = ["commit", "CommitFailed", "parent_image", "commit_layer"]


class CommitFailed(errors.WincontainersError):
    """A commit step failed. ``step`` names it, ``container_state`` is the container's state
    now, and ``__cause__`` is the original error. No image or layer was left behind."""

    def __init__(self, container: str, step: str, container_state: str, cause: BaseException) -> None:
        self.container = container
        self.step = step
        self.container_state = container_state
        reason = str(cause).rstrip(". ")
        super().__init__(f"commit of container {container} failed while {step}: {reason}. "
                         f"The container is {container_state}; no image was created")


def parent_image(store: ImageStore, container: "Container") -> Image:
    """The image the container was created from (a host OS image is recorded on first use)."""
    record = container.record
    if record.image_id:
        with contextlib.suppress(errors.NotFound):
            return store.get(record.image_id)
    with contextlib.suppress(errors.NotFound, errors.BadInput):
        found = store.resolve(record.image)
        if [str(f) for f in store.layer_folders(found)] == [str(p) for p in record.layers]:
            return found
    raise errors.BadInput(f"container {container.name} was created from layers the image store does not know "
                          f"({record.image}); commit needs a container created from an image")


def commit_layer(store: ImageStore, container: "Container", parent: Optional[LayerRecord], *, lease: Any,
                 progress: ProgressLike = None) -> LayerRecord:
    """Export the (stopped) container's changes and import them as a layer over ``parent``.

    Links a layer tar cannot carry (the WSL symlinks Cygwin's installer leaves) go into the tar
    as records, so that the import's check refuses the layer with its full report
    (:class:`~wincontainers.layers.LayerRejected`: every such file named, with advice) where
    ImportLayer would fail with "Catastrophic failure" and no name."""
    tar = store.new_temp_file(".tar")
    try:
        store.layers.export_tar(container.id, tar, progress=progress, unsupported_reparse="keep")
        return store.add_layer(tar, parent, lease=lease, progress=progress)
    finally:
        with contextlib.suppress(OSError):
            tar.unlink()


def _resolve(host: Optional["Host"], container: Union["Container", str]) -> "Container":
    if isinstance(container, str):
        if host is None:
            raise errors.BadInput("give the host to find a container by name")
        return host.containers.get(container)
    return container


def commit(
    container: Union["Container", str],
    tag: Optional[str] = None,
    *,
    host: Optional["Host"] = None,
    message: str = "",
    author: str = "",
    changes: Sequence[str] = (),
    stop: bool = False,
    restart: bool = False,
    timeout: float = 10.0,
    progress: ProgressLike = None,
) -> Image:
    """Commit ``container`` (a Container, or its name/id with ``host``) as a new image.

    ``changes``: Dockerfile instructions that change the config (``CMD``, ``ENV``, ``WORKDIR``,
    ``EXPOSE``, ``LABEL``, ``USER``, ``VOLUME``, ``ENTRYPOINT``, ``SHELL``, ``STOPSIGNAL``,
    ``HEALTHCHECK``, ``ONBUILD``). Raises ``InvalidState`` for a running container unless
    ``stop``; :class:`CommitFailed` when a step fails.
    """
    target = _resolve(host, container)
    store = target.host.images
    commands: list[Command] = parse_changes(changes)
    if tag is not None:
        from wincontainers.images.reference import parse_reference

        parse_reference(tag)
    if restart and not stop:
        raise errors.BadInput("restart=True goes with stop=True")
    state = target.status
    was_running = state in ("running", "paused")
    if was_running and not stop:
        raise errors.InvalidState(
            "commit", subject=target.subject, message=f"the container is {state}; its files are changing",
            hint="stop it first (wincontainers stop), or commit with stop=True (--stop), "
                 "and restart=True (--restart) to start it again afterwards")
    parent = parent_image(store, target)
    step = "stopping the container"
    previous = store.get(tag) if tag and store.exists(tag) else None
    image: Optional[Image] = None
    try:
        if was_running:
            target.stop(timeout)
        with store.lease() as lease, operation_progress(progress, desc=f"commit {target.name}") as shared:
            step = "exporting and importing the container's changes"
            chain = store.layer_chain(parent)
            layer = commit_layer(store, target, chain[-1] if chain else None, lease=lease, progress=shared)
            step = "recording the image"
            config = dict(parent.container_config)
            authors: list[str] = []
            cmd_set = False
            for command in commands:
                apply_to_config(config, command, cmd_set=cmd_set, author=authors)
                cmd_set = cmd_set or isinstance(command, Cmd)
            created_by = target.record.command or "wincontainers commit"
            doc = derive_config(parent.config, diff_id=layer.diff_id, created_by=created_by, comment=message,
                                author=author or (authors[-1] if authors else ""), config=config)
            image = store.add(doc, chain + [layer], tags=[tag] if tag else [])
        if was_running and restart:
            step = "restarting the container"
            target.start(detach=True)  # its monitor holds the main process: `logs` shows its output
        return image
    except BaseException as exc:
        # Undone newest first: the tag goes back to what it was (all or nothing), then whatever
        # this commit made and nothing references, then the container runs again.
        undo = Rollback(f"committing container {target.name}", log)
        if was_running and restart and step != "restarting the container":
            undo.add(f"container {target.name} stopped (it was running)", lambda: target.start(detach=True))
        undo.add("unreferenced objects of this commit (gc)", store.gc)
        if image is not None and (previous is None or previous.manifest_digest != image.manifest_digest):
            made = image

            def untag() -> None:
                if previous is not None and tag:
                    store.tag(previous, tag)
                store.remove(made.id, force=True, prune=False)

            undo.add(f"image {image.short_id}{f' tagged {tag}' if tag else ''}", untag)
        leftovers = undo.undo(exc)
        try:
            state = target.status
        except errors.WincontainersError as status_error:
            log.warning("after a failed commit, the state of container %s is unknown: %s", target.name, status_error)
        if isinstance(exc, (errors.HcsError, OSError, errors.WincontainersError)) and not isinstance(exc, CommitFailed):
            failed = CommitFailed(target.name, step, state, exc)
            failed.leftovers = leftovers
            raise failed from exc
        raise
