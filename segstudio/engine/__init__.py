"""Ring 2: training (and, later, inference) on torch + smp + albumentations; never Qt.

Entry points: ``engine.train.train`` (generator of ``engine.events``), ``engine.checkpoint.load_checkpoint``,
``engine.config.TrainConfig``, ``engine.recipes.load_recipe``, the registries ``engine.models.build_model``,
``engine.losses.make_loss_term`` and ``engine.augment.PRESETS``. Importing this package imports nothing heavy.
"""
