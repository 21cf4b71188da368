"""``python -m streams.serving``: the lookup API with the ``KAIROS_*`` settings (what ``kairos serve`` runs)."""

from streams.serving.api import serve
from streams.settings import KairosSettings

serve(KairosSettings())
