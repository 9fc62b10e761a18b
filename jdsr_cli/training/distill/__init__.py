"""``jdsr distill``: a student trained from frozen teachers with the SR distillation losses of the literature.

``options`` is the ``[distill]`` table, ``terms`` the feature losses (one module per method, its adapters
trained with the student), ``method`` the training method. Every formula and default, with what is a
reconstruction, is in ``docs/design/distillation-methods.md``.
"""
