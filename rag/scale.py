"""Similarity thresholds that follow the embedder.

Cosine similarities live on a different scale for every embedder: multilingual-e5-small
puts unrelated sentences near 0.77, other models near 0.1. The thresholds in Settings
are written on e5-small's scale (where they were calibrated, see docs/evaluation.md); for another
embedder they are carried over by standard score: measured once per process on a fixed
set of unrelated sentences in the four languages, a threshold keeps the same distance,
in standard deviations, above the typical similarity of unrelated text.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

# Unrelated statements, eight per language, on different topics.
CALIBRATION = [
    "The bakery opens at seven in the morning.",
    "Heavy rain flooded the northern highway.",
    "She plays the cello in a string quartet.",
    "The museum added a wing for modern sculpture.",
    "Tomatoes grow best in warm, sunny soil.",
    "The train to the coast was cancelled.",
    "He repaired the old bicycle over the weekend.",
    "The library extends its hours during exams.",
    "아이들은 공원에서 축구를 했다.",
    "이 식당은 매운 국수로 유명하다.",
    "겨울에는 산길이 자주 얼어붙는다.",
    "그는 매일 아침 강가를 따라 달린다.",
    "새 도서관은 시청 옆에 지어졌다.",
    "할머니는 정원에서 고추를 키우신다.",
    "버스 요금이 다음 달부터 오른다.",
    "그 화가는 바다 풍경을 주로 그린다.",
    "这家茶馆已经开了五十年。",
    "孩子们在河边放风筝。",
    "昨晚的音乐会座无虚席。",
    "他每天骑自行车上班。",
    "山上的寺庙很安静。",
    "这本小说讲述了一个渔民的故事。",
    "市场里的水果很新鲜。",
    "冬天这里经常下雪。",
    "Pasar pagi menjual sayur dan ikan segar.",
    "Kereta ke Bandung berangkat setiap jam.",
    "Dia belajar menari sejak kecil.",
    "Hujan deras membuat jalan di desa berlumpur.",
    "Museum itu memamerkan kain batik kuno.",
    "Nelayan berangkat sebelum matahari terbit.",
    "Kopi dari dataran tinggi itu terkenal harum.",
    "Sekolah baru dibangun di dekat sungai.",
]


@dataclass(frozen=True)
class Scale:
    """Mean and standard deviation of an embedder's query-to-passage cosine between unrelated texts."""

    mean: float
    std: float

    def carry(self, value: float, tuned_on: Scale) -> float:
        """A threshold set on `tuned_on`'s scale, moved to this one."""
        return self.mean + (value - tuned_on.mean) / tuned_on.std * self.std


# multilingual-e5-small, the embedder the thresholds in Settings were calibrated with
# (tests/test_scale.py checks this against the provisioned model).
E5_SMALL = Scale(mean=0.7763, std=0.0377)


def measure(embedder) -> Scale:
    import numpy as np

    queries = embedder.encode_queries(CALIBRATION)
    passages = embedder.encode_passages(CALIBRATION)
    cosines = np.array([float(queries[i] @ passages[j]) for i, j in itertools.permutations(range(len(CALIBRATION)), 2)])
    return Scale(float(cosines.mean()), float(cosines.std()))
