"""What the embedding rollout tests share: a small labelled corpus (the second models they
roll out to are built by ``testing.embedding_models``)."""

from __future__ import annotations

import json
from pathlib import Path

TOPICS = {
    "sourdough": (
        "Sourdough bread rises with a starter of wild yeast and lactic bacteria instead of "
        "commercial yeast. Feed the starter flour and water every day, let the dough ferment "
        "slowly overnight, shape the loaf, and bake it in a very hot Dutch oven for a crisp "
        "crust and an open crumb.",
        "How do I keep a starter alive and bake bread with a crisp crust?",
    ),
    "volcano": (
        "A volcano erupts when molten magma from the mantle rises through cracks in the crust. "
        "Lava flows, ash clouds and pyroclastic flows follow; most volcanoes sit where tectonic "
        "plates collide or pull apart, around the Pacific ring of fire.",
        "Why does magma erupt from mountains along the ring of fire?",
    ),
    "chess": (
        "Chess openings such as the Sicilian Defence and the Queen's Gambit fight for the centre "
        "of the board. Develop the knights and bishops early, castle to protect the king, and "
        "look for tactics that lead to checkmate.",
        "Which opening moves should I play to protect my king and control the centre?",
    ),
    "photosynthesis": (
        "Photosynthesis lets green plants turn sunlight, water and carbon dioxide into glucose "
        "and oxygen. Chlorophyll in the chloroplasts of the leaves absorbs red and blue light; "
        "the Calvin cycle then fixes the carbon into sugar.",
        "How do leaves make sugar from light and carbon dioxide?",
    ),
    "jazz": (
        "Jazz was born in New Orleans from blues and ragtime. Musicians improvise solos over "
        "chord changes; the swing era brought big bands, and bebop players like Charlie Parker "
        "played fast saxophone lines in small combos.",
        "Who improvised on the saxophone in the bebop era?",
    ),
    "basketball": (
        "Basketball is played by two teams of five who score by shooting the ball through a "
        "hoop ten feet high. Players dribble to move the ball, a shot from behind the arc "
        "counts three points, and the NBA plays four quarters of twelve minutes.",
        "How many points is a shot from behind the arc worth in the NBA?",
    ),
    "bicycle": (
        "To repair a punctured bicycle tyre, remove the wheel, lever the tyre off the rim, find "
        "the hole in the inner tube and patch it. Keep the chain oiled and the derailleur "
        "adjusted so that the gears shift cleanly.",
        "How do I fix a flat tyre on my bike?",
    ),
    "taxes": (
        "Filing an income tax return means reporting wages, interest and dividends, then "
        "claiming deductions and credits. Keep receipts for charitable donations, and file "
        "before the April deadline to avoid penalties from the revenue service.",
        "When is the deadline to file my income tax return and which deductions can I claim?",
    ),
    "astronomy": (
        "Astronomers point telescopes at distant galaxies, nebulae and stars. Light from a "
        "galaxy millions of light years away shows the universe expanding, and a nebula of gas "
        "and dust is where new stars are born.",
        "Where are new stars born, and what do telescopes show about distant galaxies?",
    ),
    "beekeeping": (
        "Beekeepers keep honey bee colonies in wooden hives. The queen lays the eggs, worker "
        "bees collect nectar and pollen from flowers, and in late summer the beekeeper "
        "harvests the honey from the frames wearing a veil and gloves.",
        "How does a beekeeper harvest honey from a hive?",
    ),
    "knitting": (
        "Knitting turns yarn into fabric with two needles. Cast on a row of stitches, "
        "alternate knit and purl stitches for ribbing, and a beginner's first project is "
        "often a simple woollen scarf.",
        "What should a beginner knit first with yarn and needles?",
    ),
    "sushi": (
        "Sushi combines vinegared rice with raw fish such as tuna and salmon. Nigiri is "
        "pressed by hand, maki is rolled in sheets of nori seaweed, and it is served with "
        "soy sauce, pickled ginger and wasabi.",
        "How is nigiri made with vinegared rice and raw fish?",
    ),
}


def write_corpus(folder: Path) -> dict[str, Path]:
    """One text file per topic; returns the files by topic."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, (text, _) in TOPICS.items():
        path = folder / f"{name}.txt"
        path.write_text(f"{name.title()}\n\n{text}\n", encoding="utf-8")
        files[name] = path
    return files


def write_queries(path: Path, files: dict[str, Path]) -> Path:
    """The labelled query set: each topic's question, its file's URI relevant."""
    lines = [
        json.dumps({"query": TOPICS[name][1], "relevant": [file.resolve().as_uri()]})
        for name, file in files.items()
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
