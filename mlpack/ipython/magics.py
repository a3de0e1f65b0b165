"""``%%containerize`` and ``%containerize``: the serve pipeline from a notebook cell."""

from __future__ import annotations

import linecache
import time
import traceback
from dataclasses import replace
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class

from mlpack.bundle.hooks import defined as hooks_defined
from mlpack.bundle.hooks import parse as parse_hooks
from mlpack.errors import ConfigError, MlpackError, ServeError
from mlpack.ipython.args import USAGE, ContainerizeArgs, parse_args
from mlpack.ipython.display import StageFailure, StatusView, make_progress, widgets_available

__all__ = ["ContainerizeMagics", "hooks_defined"]

@magics_class
class ContainerizeMagics(Magics):
    """``%%containerize MODEL --sample X [options]`` (cell body: preprocess/postprocess)."""

    #: the Service of the last successful run, and the last failure (for tests and the curious)
    last_service: Any = None
    last_error: BaseException | None = None
    last_seconds: float | None = None

    @line_cell_magic
    def containerize(self, line: str, cell: str | None = None) -> None:
        """Capture, build and run a model from the notebook, then check the container answers
        the sample like the kernel does. ``%containerize?`` for the options."""
        started = time.monotonic()
        self.last_error = None
        debug = "--debug" in line.split()
        try:
            args = parse_args(line)
            self._run(args, cell, started)
        except MlpackError as exc:
            self.last_error = exc
            if debug:
                raise
            raise StageFailure(exc) from None
        finally:
            self.last_seconds = time.monotonic() - started

    containerize.__doc__ = (containerize.__doc__ or "") + "\n\n" + USAGE

    def _namespace_value(self, var: str, what: str) -> Any:
        ns = self.shell.user_ns
        if var not in ns:
            raise ConfigError(f"there is no variable {var!r} in the notebook ({what})",
                              hint=f"run the cell that defines {var} first, or check the spelling",
                              stage="config")
        return ns[var]

    def _run_cell_body(self, cell: str) -> str | None:
        if not cell or not cell.strip():
            return None
        parse_hooks(cell, ConfigError)  # the one hooks contract: plain Python, as hooks.py
        # Run in the kernel first, so the hooks are tested there and usable from the notebook.
        filename = "<%%containerize cell>"
        linecache.cache[filename] = (len(cell), None, cell.splitlines(True), filename)
        try:
            exec(compile(cell, filename, "exec"), self.shell.user_ns)  # noqa: S102
        except Exception as exc:
            # Only the user's frames: from the cell's first frame on, none of mlpack's.
            frames = traceback.extract_tb(exc.__traceback__)
            first = next((i for i, f in enumerate(frames) if f.filename == filename), len(frames))
            shown = "".join(traceback.format_list(frames[first:])[-8:])
            raise ServeError(f"the cell raised {type(exc).__name__}: {exc}",
                             hint="fix the cell; it runs in the kernel before anything is built",
                             output=shown, stage="hooks") from None
        if not hooks_defined(cell):
            print("mlpack: the cell defines neither preprocess() nor postprocess(): "
                  "nothing to ship beside the model")
            return None
        return cell

    def _run(self, args: ContainerizeArgs, cell: str | None, started: float) -> None:
        from mlpack.service import serve

        hooks_source = self._run_cell_body(cell) if cell is not None else None
        model = self._namespace_value(args.model_var, "MODEL_VAR")
        sample = self._namespace_value(args.sample_var, "--sample")
        options = replace(args.options, hooks_source=hooks_source)
        use_widgets = widgets_available(self.shell)
        progress = make_progress(f"containerizing {args.model_var} as {options.name}", self.shell)
        previous = self.shell.user_ns.get(args.service_var)
        try:
            service = serve(model, sample, options=options, progress=progress)
        except MlpackError as exc:
            progress.failed(StageFailure(exc))
            if getattr(exc, "service", None) is not None:
                self.shell.user_ns[args.service_var] = exc.service
            raise
        self.last_service = service
        self.shell.user_ns[args.service_var] = service
        if (previous is not None and getattr(previous, "container", None) is not None
                and getattr(previous, "name", None) != service.name):
            previous.stop()  # renamed: the new service runs and answers; only now does the old one go
        took = time.monotonic() - started
        if service.container is None:
            print(f"mlpack: built {options.image_tag} in {took:.2f} s (--no-run); "
                  f"the Service is in `{args.service_var}`")
            return
        first = service.first_prediction_at
        print(f"mlpack: {service.url} answers like the kernel ({service.parity.summary()}); "
              f"cell to first prediction {took if first is None else first - started:.2f} s; "
              f"the Service is in `{args.service_var}`")
        StatusView(service, widgets=use_widgets).show()
