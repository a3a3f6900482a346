"""Screening result letters to parents and guardians (视力/生长发育筛查结果告家长书).

One letter per student and screening kind: the result in plain words, what it means, and what to
do next, with a slip to return. Wording follows the screening rules the archive applies
(《儿童青少年近视防控适宜技术指南》 NHC 2021; WS/T 586-2018 overweight and obesity; WS/T 456-2014
wasting and stunting) and the prevention advice those documents give to families. The letter is
addressed to the guardian named in the protected roster; without one, to the student's parents.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from models.follow_up import Finding, default_next_check, growth_findings, vision_findings
from services.students.facts import StudentFacts

TITLES = {
    ("vision", "zh-CN"): "视力筛查结果告家长书", ("growth", "zh-CN"): "生长发育筛查结果告家长书",
    ("vision", "en"): "Vision screening result: letter to parents",
    ("growth", "en"): "Growth screening result: letter to parents",
}

_MEANING = {
    "zh-CN": {
        "screening_myopia": "筛查提示孩子可能近视（筛查性近视：裸眼视力低于 5.0，且非睫状肌麻痹下等效球镜度数"
                            "≤ -0.50 D）。筛查不能代替医学诊断。",
        "visual_impairment": "孩子的裸眼视力低于正常（视力低下：4.9 为轻度，4.6–4.8 为中度，4.5 及以下为重度），"
                             "原因可能是近视、远视、散光或其他眼病。",
        "overweight": "按《学龄儿童青少年超重与肥胖筛查》（WS/T 586-2018），孩子的体重指数（BMI）属于超重。",
        "obesity": "按《学龄儿童青少年超重与肥胖筛查》（WS/T 586-2018），孩子的体重指数（BMI）属于肥胖。",
        "wasting": "按《学龄儿童青少年营养不良筛查》（WS/T 456-2014），孩子的体重指数（BMI）低于同龄同性别标准，"
                   "属于消瘦。",
        "stunting": "按《学龄儿童青少年营养不良筛查》（WS/T 456-2014），孩子的身高低于同龄同性别标准，"
                    "属于生长迟缓。",
    },
    "en": {
        "screening_myopia": "The screening suggests your child may be short-sighted (screening myopia: uncorrected "
                            "acuity below 5.0 and a spherical equivalent of -0.50 D or less without cycloplegia). "
                            "A screening is not a diagnosis.",
        "visual_impairment": "Your child's uncorrected acuity is below normal (4.9 mild, 4.6-4.8 moderate, 4.5 or "
                             "less severe); short sight, long sight, astigmatism or another eye condition may be "
                             "the cause.",
        "overweight": "By WS/T 586-2018, your child's body mass index (BMI) is in the overweight range.",
        "obesity": "By WS/T 586-2018, your child's body mass index (BMI) is in the obesity range.",
        "wasting": "By WS/T 456-2014, your child's BMI is below the standard for age and sex (wasting).",
        "stunting": "By WS/T 456-2014, your child's height is below the standard for age and sex (stunting).",
    },
}

_TODO = {
    "zh-CN": {
        "vision": "请在 {by} 前带孩子到具备资质的医疗机构眼科进行检查（必要时散瞳验光），确诊后遵医嘱矫正，"
                  "配镜须经医生或验光师验光。",
        "growth_weight": "请调整饮食，少吃高油、高糖食物，不喝含糖饮料；保证每天至少 60 分钟中高强度身体活动；"
                         "必要时到医疗机构儿科或营养门诊咨询。学校将在 {by} 前后复查。",
        "growth_under": "请在 {by} 前带孩子到医疗机构儿科检查，查找原因，保证均衡营养和充足睡眠。",
        "normal_vision": "本次筛查视力未见异常。",
        "normal_growth": "本次筛查身高、体重未见异常。",
        "habits_vision": "日常请帮助孩子：每天户外活动 2 小时以上；读写做到“一尺、一拳、一寸”，连续用眼 40 分钟"
                         "休息 10 分钟；控制电子屏幕时间；保证充足睡眠。",
        "habits_growth": "日常请帮助孩子：均衡膳食，吃好早餐；每天户外活动和体育锻炼；保证充足睡眠。",
    },
    "en": {
        "vision": "Please take your child to a qualified eye clinic before {by} for an examination (with "
                  "cycloplegic refraction where the doctor advises) and follow the doctor's advice; spectacles "
                  "should be prescribed after a proper refraction.",
        "growth_weight": "Please adjust the diet (less fat and sugar, no sugary drinks) and make sure your child is "
                         "active at moderate to vigorous intensity for at least 60 minutes a day; ask a paediatric "
                         "or nutrition clinic if needed. The school will re-check around {by}.",
        "growth_under": "Please take your child to a paediatric clinic before {by} to find the cause, and make sure "
                        "meals are balanced and sleep is sufficient.",
        "normal_vision": "The screening found nothing abnormal in your child's vision.",
        "normal_growth": "The screening found nothing abnormal in your child's height and weight.",
        "habits_vision": "Every day: at least two hours outdoors; keep reading distance (one foot from the book, "
                         "one fist from the desk, one inch from the pen tip), a 10-minute break after 40 minutes of "
                         "close work; limit screen time; enough sleep.",
        "habits_growth": "Every day: balanced meals and a good breakfast, outdoor play and exercise, enough sleep.",
    },
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Letter:
    kind: str
    student_key: str
    facts: StudentFacts | None
    greeting: str
    intro: str
    results: list[tuple[str, str]]
    findings: list[Finding]
    meaning: list[str]
    todo: list[str]
    return_by: date
    measured_on: date


def greeting(language: str, facts: StudentFacts | None) -> str:
    """"尊敬的张建国家长：" from the roster's guardian; without one, the student's parents."""
    guardian = facts.guardian_name if facts else None
    student = facts.name if facts else None
    if language == "zh-CN":
        if guardian:
            return f"尊敬的{guardian}家长："
        return f"尊敬的{student}同学家长：" if student else "尊敬的家长："
    if guardian:
        return f"Dear {guardian},"
    return f"Dear parent or guardian of {student}," if student else "Dear parent or guardian,"


def _results(kind: str, language: str, screening: dict[str, Any]) -> list[tuple[str, str]]:
    zh = language == "zh-CN"

    def value(name: str, unit: str = "") -> str:
        found = screening.get(name)
        return "–" if found is None else f"{found}{unit}"

    if kind == "vision":
        rows = [("右眼裸眼视力" if zh else "Uncorrected acuity, right eye", value("ucva_right")),
                ("左眼裸眼视力" if zh else "Uncorrected acuity, left eye", value("ucva_left"))]
        if screening.get("se_right") is not None or screening.get("se_left") is not None:
            rows += [("右眼等效球镜" if zh else "Spherical equivalent, right eye", value("se_right", " D")),
                     ("左眼等效球镜" if zh else "Spherical equivalent, left eye", value("se_left", " D"))]
        rows.append(("戴镜" if zh else "Wears glasses",
                     ("是" if zh else "yes") if screening.get("wears_glasses") else ("否" if zh else "no")))
        return rows
    # The exactly rounded BMI (what WS/T 586/456 compared); a float BMI can show 23.7 for 23.75.
    bmi = screening.get("bmi_rounded", screening.get("bmi"))
    return [("身高" if zh else "Height", value("height_cm", " cm")),
            ("体重" if zh else "Weight", value("weight_kg", " kg")),
            ("体重指数（BMI）" if zh else "Body mass index (BMI)", "–" if bmi is None else f"{float(bmi):.1f}")]


def build_letter(kind: str, language: str, student_key: str, facts: StudentFacts | None,
                 screening: dict[str, Any], *, next_check: date | None = None) -> Letter:
    """The letter for one student's latest ``kind`` screening (a row of the vision or growth view)."""
    language = language if language in ("zh-CN", "en") else "zh-CN"
    if kind == "vision":
        findings = vision_findings(screening.get("screening_myopia"), screening.get("impairment_student"))
    else:
        findings = growth_findings(screening.get("wst586"), screening.get("wst456_wasting"),
                                   screening.get("wst456_stunting"))
    measured_on: date = screening["measured_on"]
    by = next_check or default_next_check(findings, measured_on)
    todo_texts = _TODO[language]
    todo: list[str] = []
    if kind == "vision":
        todo.append(todo_texts["vision"].format(by=by.isoformat()) if findings else todo_texts["normal_vision"])
        todo.append(todo_texts["habits_vision"])
    else:
        if any(f in ("overweight", "obesity") for f in findings):
            todo.append(todo_texts["growth_weight"].format(by=by.isoformat()))
        if any(f in ("wasting", "stunting") for f in findings):
            todo.append(todo_texts["growth_under"].format(by=by.isoformat()))
        if not findings:
            todo.append(todo_texts["normal_growth"])
        todo.append(todo_texts["habits_growth"])
    name = (facts.name if facts else None) or "________"
    school = (facts.school_name if facts else None) or ""
    grade = f"{facts.grade}年级" if facts and facts.grade else ""
    klass = f"{facts.class_name}班" if facts and facts.class_name else ""
    if language == "zh-CN":
        intro = (f"您的孩子 {name}（{school}{grade}{klass}）于 {measured_on.isoformat()} 参加了学校组织的"
                 f"{'视力' if kind == 'vision' else '身高体重'}筛查，结果如下：")
    else:
        where = ", ".join(filter(None, [school, f"grade {facts.grade}" if facts and facts.grade else "",
                                        f"class {facts.class_name}" if facts and facts.class_name else ""]))
        intro = (f"Your child {name} ({where}) took part in the school's "
                 f"{'vision' if kind == 'vision' else 'height and weight'} screening on {measured_on.isoformat()}. "
                 "The results:")
    return Letter(kind=kind, student_key=student_key, facts=facts, greeting=greeting(language, facts), intro=intro,
                  results=_results(kind, language, screening), findings=findings,
                  meaning=[_MEANING[language][f] for f in findings], todo=todo, return_by=by,
                  measured_on=measured_on)
