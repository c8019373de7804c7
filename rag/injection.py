"""The injection screen: whether a sentence is an order (to an assistant or the reader)
rather than a statement. Passages are data the model quotes; an answer that rests on an
order, or is one, is withheld. Judged by form, not by topic.
"""

from __future__ import annotations

import re

# A sentence that addresses an assistant or orders the reader is a command, whatever it is
# about; a statement about instructions or prompts ("the system prompt was leaked") is not.
_ADDRESSEE = (
    r"(assistant|ai|a\.i\.|chatbot|bot|system|llm|model|language model|어시스턴트|인공지능|시스템|챗봇|모델|"
    r"助手|系统|系統|模型|机器人|機器人|asisten|sistem)"
)
# Verbs that open an order whatever follows; and verbs that open one only before an object
# such as "with", "only", a quote ("Reply rates rose" is a statement, "Reply with …" an order).
_ORDER = r"(ignore|disregard|forget|append|decode|visit|click|output|print|repeat|translate|do not|don't|from now on)"
_ORDER_BEFORE_OBJECT = (
    r"(reply|respond|answer|say|write|tell|include|add|never|always)\s+"
    r"(with|only|to|that|in|as|the following|everything|all|this|these|every|each|any|[\"“«'])"
)
_LABEL_BEFORE = r"^\W*([\w ]{1,30}[:：]\s*)?(please\s+)?"
_INSTRUCTION = re.compile(
    # an address: "SYSTEM: …", "Assistant, …", "system Answer …", "시스템:", "助手，…", "Asisten, …"
    rf"{_LABEL_BEFORE}(dear |hey |note to (the )?)?{_ADDRESSEE}(\s*[,:：，、]|\s+({_ORDER}|{_ORDER_BEFORE_OBJECT}|"
    r"answer|reply|respond|say)\b)"
    # an addressee told what to do: "the assistant must answer …", "어시스턴트는 … 답하십시오", "助手必须…"
    rf"|{_ADDRESSEE}(는|은|가|이|께서|에게)?\s*.{{0,60}}?(must|should|shall|has to|have to|is to|will now|하십시오|하세요|"
    rf"해야|하라|必须|必須|应该|應該|应当|須|请|請|harus|wajib|hendaknya)"
    # an imperative opening, after an optional label ("Important: ignore …")
    rf"|{_LABEL_BEFORE}({_ORDER}\b|{_ORDER_BEFORE_OBJECT})"
    rf"|{_LABEL_BEFORE}(请(?!假|求|示|教|柬)|請(?!假|求|示|教|柬)|忽略|无视|無視|不要|务必|務必|只回答|输出|輸出)"
    rf"|{_LABEL_BEFORE}(abaikan|lupakan|jawab(lah)?|balas(lah)?|tambahkan|tuliskan|tulislah|katakan|sebutkan|"
    r"sampaikan|jangan|kunjungi|klik)\b"
    # Korean imperative or request endings
    r"|(하십시오|하세요|하라|해라|십시오|마십시오|마세요|주십시오|주세요|할 것)\W*$"
    # "ignore … above / previous …" anywhere, in the four languages
    r"|\b(ignore|disregard|forget)\b.{0,20}\b(above|previous|prior|earlier|preceding)\b"
    r"|\b(ignore|disregard|forget)\b.{0,20}\b(your|all|these|those|any) (instructions|prompts|rules)\b"
    r"|(이전|위의?|앞의?).{0,12}(지시|명령|지침).{0,12}무시|(忽略|无视|無視).{0,12}(指令|指示|以上|之前|提示)"
    r"|\b(abaikan|lupakan)\b.{0,30}\b(instruksi|perintah|petunjuk|sebelumnya|di atas)\b"
    # "…, sampaikan itu kepada pengguna" / "tell the user": an order placed after a statement
    r"|\b(sampaikan|katakan|beritahukan)\b.{0,30}\bpengguna\b|\btell the user\b",
    re.IGNORECASE,
)


def instructs(sentence: str) -> bool:
    """True if the sentence is an order (to an assistant or the reader), not a statement."""
    from .prompts import fence

    return _INSTRUCTION.search(fence(sentence)) is not None
