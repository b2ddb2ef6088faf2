"""The linear-Gaussian teacher-student model: case files, exact values, and
the linear modules and samplers that let the generic estimators run on it
(``bounds.md`` sections 1-2). Only this subpackage assumes linearity."""
