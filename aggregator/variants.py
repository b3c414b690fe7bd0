"""Which spellings of a page each network is asked for, and how their answers make one count."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence, Set

from aggregator.config import Settings
from aggregator.urls import VARIANT_KINDS, host_of, variants
from providers.base import Observation, Provider


def spellings(
    url: str, aliases: Sequence[str], settings: Settings, provider: type[Provider]
) -> list[str]:
    """What `provider` is asked for a page: the page and its aliases, each in the variants its
    site's settings turn on that the network does not merge itself; the page first."""
    found: list[str] = []
    for spelling in (url, *aliases):
        site = settings.site(host_of(spelling))
        kinds = {k for k in VARIANT_KINDS if getattr(site, k)} - provider.merges_variants
        found += variants(spelling, kinds)
    return list(dict.fromkeys(found))


def borrowed(url: str, aliases: Sequence[str], spelled: Sequence[str]) -> list[str]:
    """The spellings of a page that are neither it nor one of its aliases: its variants, which
    may be pages (or aliases) of their own."""
    own = {url, *aliases}
    return [s for s in spelled if s not in own]


def unheld(url: str, aliases: Sequence[str], spelled: Sequence[str], held: Set[str]) -> list[str]:
    """A page's spellings without the variants in `held`, pages or aliases of their own: each
    of those counts its shares once, itself, rather than again in every page it is a variant of."""
    dropped = {s for s in borrowed(url, aliases, spelled) if s in held}
    return [s for s in spelled if s not in dropped]


def fold(answers: Sequence[Observation]) -> Observation:
    """One page's observation from its spellings' answers: summed, except that spellings
    answering the identical number count once (the network saw them as one page); parts and
    days are summed over the same answers."""
    kept: dict[int, Observation] = {}
    for answer in answers:
        kept.setdefault(answer.count, answer)
    parts: defaultdict[str, int] = defaultdict(int)
    days: defaultdict[str, int] = defaultdict(int)
    for answer in kept.values():
        for name, value in answer.parts.items():
            parts[name] += value
        for day, value in answer.days.items():
            days[day] += value
    return Observation(sum(kept), dict(parts), dict(days))


class Gathering:
    """The answers of one network's round, gathered per page: a page is done once every one
    of its spellings has answered (spellings shared by pages are asked once)."""

    def __init__(self, pages: Mapping[str, Sequence[str]]) -> None:
        self._pages = pages
        self._waiting = {page: set(spelled) for page, spelled in pages.items()}
        self._of: defaultdict[str, list[str]] = defaultdict(list)
        for page, spelled in pages.items():
            for spelling in spelled:
                self._of[spelling].append(page)
        self._answers: dict[str, Observation] = {}

    @property
    def asked(self) -> list[str]:
        """Every spelling to ask for, each once."""
        return list(self._of)

    def pages_of(self, spellings: Sequence[str]) -> set[str]:
        """The pages that any of these spellings belongs to."""
        return {page for s in spellings for page in self._of.get(s, ())}

    def add(self, answers: Mapping[str, Observation]) -> dict[str, Observation]:
        """Take a batch of answers; return the folded observation of each page they complete."""
        done: dict[str, Observation] = {}
        for spelling, answer in answers.items():
            self._answers[spelling] = answer
            for page in self._of.get(spelling, ()):
                waiting = self._waiting[page]
                waiting.discard(spelling)
                if not waiting:
                    done[page] = fold([self._answers[s] for s in self._pages[page]])
        return done
