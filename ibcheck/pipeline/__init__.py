"""The paper's pipeline (Herwana & Kadian, sections 3-4), along its data flow:
``data`` (images) -> ``vae`` and ``teacher_run`` (the teacher) -> ``student`` ->
``tracking`` (the harness's estimators every epoch) -> ``training`` and ``runs``
(resumable run folders) -> ``plots``. ``configure`` builds a run's config, and ``sizes`` checks
that its widths and draw counts fit before the folder is written."""
