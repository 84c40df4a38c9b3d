"""What keeps data safe and nxgid responsive, whatever the input (docs/data-safety.md).

* :mod:`~nxgid.safety.paths`: outputs never meet inputs; the experiment tree is a boundary.
* :mod:`~nxgid.safety.deadline`: third-party reads get a time limit.
* :mod:`~nxgid.safety.formats`: image headers checked before a reader trusts them.
* :mod:`~nxgid.safety.partials`: unfinished writes, named so a later run can clear them.
* :mod:`~nxgid.safety.resources`: unwritable outputs and impossible memory refused early.
* :mod:`~nxgid.safety.quiet`: library output routed through logging, errors rewritten.

This package sits below everything else: it imports only :mod:`nxgid.errors`.
"""
