"""The pages' message catalogue: zh-CN and en, one key per visible string.

Codes from the data (concerns, priorities, states, outcomes, classification categories) are
translated here too; an unknown code is shown as is, so a new category is visible, not hidden.
Reasons of rejected import rows come from `models.importing` in English and are shown verbatim
next to the translated column name.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

LANGUAGES = ("zh-CN", "en")
DEFAULT_LANGUAGE = "zh-CN"

_EN: dict[str, str] = {
    "app": "School health", "skip": "Skip to content", "language": "Language", "logout": "Sign out",
    "signed_in_as": "Signed in as", "nav.screening": "Enter a screening", "nav.import": "Upload a screening day",
    "nav.followup": "Follow-up list", "nav.queue": "Alert queue", "nav.risk": "Review first",
    "risk.title": "Review first", "risk.empty": "No scores for the students of your schools yet.",
    "risk.intro": "Students ranked by a screening model's estimated risk at the next screening, to decide whom "
        "to see first. This is not a diagnosis; never show it to a student or parent as a result.",
    "risk.model": "Model", "col.rank": "Rank", "col.risk": "Risk", "col.grade": "Grade",
    "col.open_alerts": "Open alerts", "col.model_version": "Model version",
    "model.depression": "Positive depression screen next term", "model.myopia_onset": "Myopia onset next year",
    "model.overweight": "Overweight or obesity next year",
    "login.title": "Sign in", "login.token": "Access token", "login.help":
        "Paste the personal access token your administrator issued (it starts with shk_).",
    "login.submit": "Sign in", "login.failed": "This token is unknown, revoked or its user is disabled.",
    "csrf.failed": "The form expired. Please try again.",
    "screening.title": "Enter one screening", "screening.kind": "Kind of screening",
    "kind.bmi": "Height and weight", "kind.vision": "Vision",
    "field.school_id": "School", "field.student_number": "Student number", "field.sex": "Sex",
    "field.birth_date": "Date of birth", "field.measured_on": "Measured on", "field.height_cm": "Height (cm)",
    "field.weight_kg": "Weight (kg)", "field.ucva_right": "Uncorrected acuity, right eye (5-point)",
    "field.ucva_left": "Uncorrected acuity, left eye (5-point)",
    "field.se_right": "Spherical equivalent, right eye (D)", "field.se_left": "Spherical equivalent, left eye (D)",
    "field.wears_glasses": "Wears glasses", "field.screener": "Screener",
    "field.oedema": "Bilateral pitting oedema", "oedema.unknown": "Not recorded", "oedema.false": "No",
    "oedema.true": "Yes", "field.row": "Row",
    "field.answers": "Answers", "field.note": "Note", "field.outcome": "Outcome",
    "field.referred_to": "Referred to (service code)", "field.file": "CSV or XLSX file",
    "sex.male": "Male", "sex.female": "Female", "yes": "Yes", "no": "No",
    "screening.save": "Save and classify", "screening.saved": "Saved and classified",
    "screening.invalid": "Please correct the marked field.", "screening.another": "Enter another screening",
    "screening.archiving": "Waiting for the archive…", "screening.archived": "Archived in the health record",
    "screening.alerts": "Alerts this screening raises", "screening.no_alerts": "No alert.",
    "screening.ok": "Looks valid.",
    "import.title": "Upload a screening day", "import.kind": "Kind of file", "import.preview": "Preview",
    "import.preview_title": "Preview before publishing", "import.accepted": "Accepted rows",
    "import.rejected": "Rejected rows", "import.reason": "Reason", "import.column": "Column",
    "import.publish": "Publish the accepted rows", "import.published": "Published",
    "import.published_detail": "{accepted} rows were published; {rejected} rejected rows were recorded.",
    "import.none_accepted": "No row can be published.", "import.header": "The file's columns are wrong",
    "import.expected": "Expected columns", "import.expired": "This upload has expired; please upload the file again.",
    "import.not_your_school": "not a school you serve",
    "import.not_your_student": "the student is not enrolled at a school you serve (a move is a transfer record)",
    "import.too_large": "The file is too large.",
    "import.more": "{n} more accepted rows not shown.",
    "followup.title": "Follow-up list", "followup.empty": "No student needs follow-up.",
    "followup.letter": "Referral letter", "followup.history": "History",
    "queue.title": "Alert queue", "queue.empty": "No open alert.", "queue.live": "Live updates on",
    "queue.offline": "Live updates interrupted; reconnecting…", "queue.sound": "Enable sound",
    "queue.sound_on": "Sound on", "queue.new_urgent": "New urgent alert",
    "col.priority": "Priority", "col.concern": "Concern", "col.student": "Student", "col.school": "School",
    "col.state": "State", "col.deadline": "Acknowledge by", "col.opened": "Opened", "col.observed": "Observed on",
    "col.evidence": "Evidence", "col.at": "When", "col.actor": "Who", "col.action": "Action",
    "overdue": "overdue", "unknown_name": "(not on the roster)",
    "alert.title": "Alert", "alert.history": "History", "alert.transitions": "What happened",
    "alert.actions": "Actions", "alert.acknowledge": "Acknowledge", "alert.note": "Add note",
    "alert.resolve": "Resolve", "alert.refer": "Refer", "alert.done": "Done.", "alert.back": "Back to the queue",
    "alert.closed": "This alert is closed.", "alert.growth": "Height and weight", "alert.vision": "Vision",
    "alert.surveys": "Questionnaires",
    "error.title": "Not available", "error.404": "There is no such alert in your queue.",
    "error.403": "Your role may not open this page.",
    "letter.title": "Referral letter", "letter.print": "Print",
    "letter.dear": "Dear parent or guardian of",
    "letter.body": "At the school health screening on {date}, the school doctor found a result that needs a "
                   "check by a doctor: {concern}. This is a screening, not a diagnosis. Please take your child to "
                   "a hospital or community health centre within four weeks and bring this letter.",
    "letter.results": "Screening results", "letter.signature": "School doctor", "letter.school": "School",
    "letter.returned": "Doctor's findings (to be returned to the school)",
    "c.bmi": "BMI", "c.bmi_for_age_z": "BMI-for-age z (WHO 2007)", "c.who_category": "WHO 2007 category",
    "c.height_for_age_z": "Height-for-age z (WHO 2007)", "c.weight_for_age_z": "Weight-for-age z (WHO 2007)",
    "c.who_weight_for_age": "WHO 2007 weight-for-age", "cat.underweight": "Underweight",
    "cat.severe_underweight": "Severe underweight", "cat.not_underweight": "Not underweight",
    "c.wst586": "WS/T 586-2018", "c.wst456_wasting": "WS/T 456-2014 wasting",
    "c.wst456_stunting": "WS/T 456-2014 stunting", "c.student_grade": "Visual impairment (worse eye)",
    "c.myopia_grade": "Myopia grade", "c.screening_myopia": "Screening myopia",
    "c.height_cm": "Height (cm)", "c.weight_kg": "Weight (kg)", "c.se_right": "SE right (D)",
    "c.se_left": "SE left (D)", "c.ucva_right": "UCVA right", "c.ucva_left": "UCVA left",
    "concern.self_harm": "Self-harm risk", "concern.depression": "Depression", "concern.anxiety": "Anxiety",
    "concern.severe_thinness": "Severe thinness", "concern.obesity": "Obesity", "concern.high_myopia": "High myopia",
    "priority.urgent": "Urgent", "priority.high": "High", "priority.medium": "Medium", "priority.low": "Low",
    "state.open": "Open", "state.acknowledged": "Acknowledged", "state.in_progress": "In progress",
    "state.resolved": "Resolved", "state.referred": "Referred",
    "action.open": "Opened", "action.acknowledge": "Acknowledged", "action.note": "Note", "action.resolve": "Resolved",
    "action.refer": "Referred", "action.reassign": "Reassigned", "action.start": "Started",
    "action.escalate": "Escalated", "action.repeat": "Repeated",
    "outcome.concern_confirmed": "Concern confirmed", "outcome.concern_not_confirmed": "Concern not confirmed",
    "outcome.support_in_school": "Support in school", "outcome.parents_informed": "Parents informed",
    "outcome.student_left": "Student left the school",
    "cat.normal": "Normal", "cat.overweight": "Overweight", "cat.obesity": "Obesity", "cat.thinness": "Thinness",
    "cat.severe_thinness": "Severe thinness", "cat.not_applicable": "Not applicable",
    "cat.none": "None", "cat.mild": "Mild", "cat.moderate": "Moderate", "cat.severe": "Severe", "cat.high": "High",
    "cat.low": "Low", "cat.moderate_severe": "Moderate or severe", "cat.stunting": "Stunting",
    "cat.true": "Yes", "cat.false": "No",
    "refused.not_acknowledged": "Acknowledge the alert first.",
    "refused.already_acknowledged": "The alert is already acknowledged.",
    "refused.already_closed": "The alert is already closed.", "refused.outcome_required": "Choose an outcome.",
    "refused.invalid": "Please check the form.",
}

_ZH: dict[str, str] = {
    "app": "学生健康", "skip": "跳到正文", "language": "语言", "logout": "退出",
    "signed_in_as": "当前用户", "nav.screening": "录入筛查", "nav.import": "上传筛查日数据",
    "nav.followup": "随访名单", "nav.queue": "预警队列", "nav.risk": "优先关注",
    "risk.title": "优先关注", "risk.empty": "您负责学校的学生暂无风险评分。",
    "risk.intro": "按筛查模型估计的下次筛查风险排序，用于决定先关注哪些学生。这不是诊断，不得作为结果告知学生或家长。",
    "risk.model": "模型", "col.rank": "排名", "col.risk": "风险", "col.grade": "年级",
    "col.open_alerts": "未结预警", "col.model_version": "模型版本",
    "model.depression": "下学期抑郁筛查阳性", "model.myopia_onset": "明年新发近视",
    "model.overweight": "明年超重或肥胖",
    "login.title": "登录", "login.token": "访问令牌",
    "login.help": "请粘贴管理员发给您的个人访问令牌（以 shk_ 开头）。",
    "login.submit": "登录", "login.failed": "令牌无效、已吊销或用户已停用。",
    "csrf.failed": "表单已过期，请重试。",
    "screening.title": "录入一次筛查", "screening.kind": "筛查类型",
    "kind.bmi": "身高体重", "kind.vision": "视力",
    "field.school_id": "学校", "field.student_number": "学籍号", "field.sex": "性别",
    "field.birth_date": "出生日期", "field.measured_on": "测量日期", "field.height_cm": "身高（厘米）",
    "field.weight_kg": "体重（千克）", "field.ucva_right": "右眼裸眼视力（五分记录）",
    "field.ucva_left": "左眼裸眼视力（五分记录）", "field.se_right": "右眼等效球镜（D）",
    "field.se_left": "左眼等效球镜（D）", "field.wears_glasses": "戴镜", "field.screener": "筛查人员",
    "field.oedema": "双侧凹陷性水肿", "oedema.unknown": "未记录", "oedema.false": "无", "oedema.true": "有",
    "field.row": "行", "field.answers": "答案", "field.note": "备注", "field.outcome": "处理结果",
    "field.referred_to": "转介至（机构代码）", "field.file": "CSV 或 XLSX 文件",
    "sex.male": "男", "sex.female": "女", "yes": "是", "no": "否",
    "screening.save": "保存并判定", "screening.saved": "已保存并判定",
    "screening.invalid": "请更正标出的字段。", "screening.another": "继续录入",
    "screening.archiving": "正在等待归档……", "screening.archived": "已归入健康档案",
    "screening.alerts": "本次筛查触发的预警", "screening.no_alerts": "无预警。", "screening.ok": "格式正确。",
    "import.title": "上传筛查日数据", "import.kind": "文件类型", "import.preview": "预览",
    "import.preview_title": "发布前预览", "import.accepted": "通过的行", "import.rejected": "被拒绝的行",
    "import.reason": "原因", "import.column": "列", "import.publish": "发布通过的行", "import.published": "已发布",
    "import.published_detail": "已发布 {accepted} 行；已记录 {rejected} 个被拒绝的行。",
    "import.none_accepted": "没有可发布的行。", "import.header": "文件的列不正确", "import.expected": "应有的列",
    "import.expired": "上传已过期，请重新上传文件。", "import.not_your_school": "不是您负责的学校",
    "import.not_your_student": "该学生不在您负责的学校在籍（转学请提交转学记录）",
    "import.too_large": "文件太大。", "import.more": "另有 {n} 个通过的行未显示。",
    "followup.title": "随访名单", "followup.empty": "暂无需要随访的学生。", "followup.letter": "转诊通知书",
    "followup.history": "历史记录",
    "queue.title": "预警队列", "queue.empty": "没有未处理的预警。", "queue.live": "实时更新已开启",
    "queue.offline": "实时更新中断，正在重连……", "queue.sound": "开启提示音", "queue.sound_on": "提示音已开启",
    "queue.new_urgent": "新的紧急预警",
    "col.priority": "优先级", "col.concern": "问题", "col.student": "学生", "col.school": "学校",
    "col.state": "状态", "col.deadline": "确认期限", "col.opened": "开启时间", "col.observed": "筛查日期",
    "col.evidence": "依据", "col.at": "时间", "col.actor": "操作人", "col.action": "操作",
    "overdue": "已超时", "unknown_name": "（花名册中无此学生）",
    "alert.title": "预警", "alert.history": "历史记录", "alert.transitions": "处理经过", "alert.actions": "操作",
    "alert.acknowledge": "确认接收", "alert.note": "添加备注", "alert.resolve": "结案", "alert.refer": "转介",
    "alert.done": "已完成。", "alert.back": "返回队列", "alert.closed": "此预警已关闭。",
    "alert.growth": "身高体重", "alert.vision": "视力", "alert.surveys": "问卷",
    "error.title": "无法访问", "error.404": "您的队列中没有这条预警。", "error.403": "您的角色无权打开此页面。",
    "letter.title": "转诊通知书", "letter.print": "打印", "letter.dear": "尊敬的家长：",
    "letter.body": "在 {date} 的学校健康筛查中，校医发现需要医生进一步检查的结果：{concern}。这是筛查结果，"
                   "不是诊断。请在四周内带孩子到医院或社区卫生服务中心就诊，并携带本通知书。",
    "letter.results": "筛查结果", "letter.signature": "校医", "letter.school": "学校",
    "letter.returned": "医生检查意见（请交回学校）",
    "c.bmi": "BMI", "c.bmi_for_age_z": "年龄别 BMI Z 值（WHO 2007）", "c.who_category": "WHO 2007 分类",
    "c.height_for_age_z": "年龄别身高 Z 值（WHO 2007）", "c.weight_for_age_z": "年龄别体重 Z 值（WHO 2007）",
    "c.who_weight_for_age": "WHO 2007 年龄别体重", "cat.underweight": "低体重",
    "cat.severe_underweight": "重度低体重", "cat.not_underweight": "非低体重",
    "c.wst586": "WS/T 586-2018", "c.wst456_wasting": "WS/T 456-2014 消瘦",
    "c.wst456_stunting": "WS/T 456-2014 生长迟缓", "c.student_grade": "视力低下（较差眼）",
    "c.myopia_grade": "近视程度", "c.screening_myopia": "筛查性近视", "c.height_cm": "身高（厘米）",
    "c.weight_kg": "体重（千克）", "c.se_right": "右眼等效球镜", "c.se_left": "左眼等效球镜",
    "c.ucva_right": "右眼裸眼视力", "c.ucva_left": "左眼裸眼视力",
    "concern.self_harm": "自伤风险", "concern.depression": "抑郁", "concern.anxiety": "焦虑",
    "concern.severe_thinness": "重度消瘦", "concern.obesity": "肥胖", "concern.high_myopia": "高度近视",
    "priority.urgent": "紧急", "priority.high": "高", "priority.medium": "中", "priority.low": "低",
    "state.open": "待确认", "state.acknowledged": "已确认", "state.in_progress": "处理中", "state.resolved": "已结案",
    "state.referred": "已转介",
    "action.open": "开启", "action.acknowledge": "确认接收", "action.note": "备注", "action.resolve": "结案",
    "action.refer": "转介", "action.reassign": "转派", "action.start": "开始处理", "action.escalate": "升级",
    "action.repeat": "重复出现",
    "outcome.concern_confirmed": "问题属实", "outcome.concern_not_confirmed": "问题不属实",
    "outcome.support_in_school": "校内支持", "outcome.parents_informed": "已告知家长",
    "outcome.student_left": "学生已离校",
    "cat.normal": "正常", "cat.overweight": "超重", "cat.obesity": "肥胖", "cat.thinness": "消瘦",
    "cat.severe_thinness": "重度消瘦", "cat.not_applicable": "不适用", "cat.none": "无", "cat.mild": "轻度",
    "cat.moderate": "中度", "cat.severe": "重度", "cat.high": "高度", "cat.low": "低度",
    "cat.moderate_severe": "中重度", "cat.stunting": "生长迟缓", "cat.true": "是", "cat.false": "否",
    "refused.not_acknowledged": "请先确认接收该预警。", "refused.already_acknowledged": "该预警已被确认。",
    "refused.already_closed": "该预警已关闭。", "refused.outcome_required": "请选择处理结果。",
    "refused.invalid": "请检查表单。",
}

_EN.update({
    "field.name": "Name", "field.grade": "Grade", "field.class_name": "Class", "field.guardian_name": "Guardian",
    "field.enrolled_on": "Enrolled on", "field.boarding": "Boarding", "field.left_behind": "Left-behind child",
    "field.disability": "Disability", "field.county_id": "County code", "field.action": "Change",
    "field.effective_on": "Effective on", "field.to_school_id": "New school code", "field.answered_on": "Answered on",
    "field.instrument": "Questionnaire", "field.instrument_version": "Questionnaire version",
    "field.now": "Submission time", "field.age": "Age",
    "import.unreadable": "This file cannot be read: save it again from Excel or WPS as .xlsx, or as CSV (UTF-8).",
    "import.unreadable.not_xlsx": "{name} is not an Excel workbook (.xlsx) that can be read. Save it again from "
        "Excel or WPS as .xlsx, or as CSV (UTF-8).",
    "import.unreadable.not_text": "{name} is not a CSV text file. Save it again from Excel or WPS as .xlsx, or as "
        "CSV (UTF-8).",
    "import.unreadable.not_csv": "{name} cannot be read as CSV. Save it again from Excel or WPS as .xlsx, or as "
        "CSV (UTF-8).",
    "import.missing": "missing columns", "import.unexpected": "columns not expected",
    "import.template": "Download a template", "import.columns_help": "The first row names the columns, in Chinese or "
        "English, in any order. Height in centimetres, weight in kilograms, acuity in 5-point notation (e.g. 4.9); "
        "dates as 2025-09-15.",
    "import.student": "Student",
    "col.grade_class": "Grade and class", "col.age_sex": "Age and sex", "age.years": "{n} years",
    "alert.earlier": "Earlier alerts of this student", "alert.none": "None.",
    "alert.safety_flag": "safety item answered",
    "band.minimal": "Minimal", "band.mild": "Mild", "band.moderate": "Moderate",
    "band.moderately_severe": "Moderately severe", "band.severe": "Severe",
    "followup.intro": "Students whose latest screening needs action. Tell the parents (print the letter), refer "
        "where needed, re-check on the date shown, then close.",
    "followup.all": "All", "followup.finding": "Finding", "followup.apply": "Show", "followup.count": "{n} students.",
    "followup.shown": "The first {n} are shown; narrow the list with the filters.",
    "followup.next_check": "Next check", "followup.step": "Record a step", "followup.save": "Save",
    "followup.alerts": "Alerts for the school doctor",
    "finding.screening_myopia": "Screening myopia", "finding.visual_impairment": "Visual impairment",
    "finding.overweight": "Overweight", "finding.obesity": "Obesity", "finding.wasting": "Wasting",
    "finding.stunting": "Stunting",
    "finding.fitness_fail": "Fitness test failed (PE teacher)", "finding.fitness_item_fail": "Fitness item failed",
    "fitness.total": "total {total}", "fitness.items": "failed: {items}",
    "fstate.to_notify": "To notify", "fstate.parents_notified": "Parents notified", "fstate.referred": "Referred",
    "fstate.rechecked": "Re-checked", "fstate.closed": "Closed",
    "letters.letter": "Letter to parents", "letters.class_vision": "Vision letters for this class",
    "letters.class_growth": "Growth letters for this class",
    "screening.lookup_help": "Type the student number or the first characters of the name: the roster fills in "
        "sex and date of birth.",
    "screening.not_on_roster": "Not on the roster of your schools: check the number, or enter sex and date of birth.",
    "nav.class_sheet": "Class screening sheet", "sheet.title": "Class screening sheet",
    "sheet.choose": "Choose a class. Its students come from the roster with name, sex and age.",
    "sheet.students": "Students", "sheet.no_roster": "No students on the roster of your schools yet.",
    "sheet.all_classes": "All classes", "sheet.no_students": "No student of the roster is in this class now.",
    "sheet.keys": "Type a value and press Enter for the next cell; Enter in the last cell goes to the next student. "
        "A row is checked, classified and saved when you leave it.",
    "sheet.progress": "{saved} of {total} students saved", "sheet.result": "Result",
    "sheet.saving": "Saving…", "sheet.saved": "saved", "sheet.failed": "Not saved; try again",
    "sheet.nothing": "Nothing typed in this row.", "sheet.normal.bmi": "weight normal",
    "sheet.normal.vision": "vision normal",
    "sheet.ucva_right": "Acuity R", "sheet.ucva_left": "Acuity L", "sheet.se_right": "SE R (D)",
    "sheet.se_left": "SE L (D)", "sheet.wears_glasses": "Glasses",
    "letter.about": "About your child", "letters.count": "{n} letters",
    "letters.none": "No student of this class has a screening of this kind.",
    "letters.meaning": "What the result means", "letters.todo": "What to do next",
    "letters.normal": "The result is within the normal range.", "letters.from": "School health office",
    "letters.slip": "Reply slip (please return to the school doctor)",
    "letters.slip_text": "I have read the screening result of {name}. Please return this slip by {by}.",
    "letters.slip_fields": "Hospital: ____________  Diagnosis: ____________  Parent's signature: ____________  "
        "Date: ________",
})
_ZH.update({
    "field.name": "姓名", "field.grade": "年级", "field.class_name": "班级", "field.guardian_name": "监护人",
    "field.enrolled_on": "入学日期", "field.boarding": "寄宿", "field.left_behind": "留守儿童",
    "field.disability": "残疾", "field.county_id": "区县代码", "field.action": "变动类型",
    "field.effective_on": "生效日期", "field.to_school_id": "转入学校代码", "field.answered_on": "答卷日期",
    "field.instrument": "量表", "field.instrument_version": "量表版本", "field.now": "提交时间", "field.age": "年龄",
    "import.unreadable": "无法读取此文件：请在 Excel 或 WPS 中另存为 .xlsx 或 CSV（UTF-8）后重新上传。",
    "import.unreadable.not_xlsx": "{name} 不是可读取的 Excel 工作簿（.xlsx）。请在 Excel 或 WPS 中另存为 .xlsx 或 "
        "CSV（UTF-8）后重新上传。",
    "import.unreadable.not_text": "{name} 不是 CSV 文本文件。请在 Excel 或 WPS 中另存为 .xlsx 或 CSV（UTF-8）"
        "后重新上传。",
    "import.unreadable.not_csv": "{name} 无法按 CSV 读取。请在 Excel 或 WPS 中另存为 .xlsx 或 CSV（UTF-8）"
        "后重新上传。",
    "import.missing": "缺少的列", "import.unexpected": "多余的列",
    "import.template": "下载模板",
    "import.columns_help": "第一行为列名，中文或英文均可，顺序不限。身高填厘米，体重填千克，"
        "视力按五分记录（如 4.9）；日期如 2025-09-15。",
    "import.student": "学生",
    "col.grade_class": "年级班级", "col.age_sex": "年龄性别", "age.years": "{n} 岁",
    "alert.earlier": "该生以往的预警", "alert.none": "无。", "alert.safety_flag": "安全条目有回答",
    "band.minimal": "无或极轻", "band.mild": "轻度", "band.moderate": "中度", "band.moderately_severe": "中重度",
    "band.severe": "重度",
    "followup.intro": "最近一次筛查结果需要处理的学生。请告知家长（打印告家长书），需要时转诊，"
        "按下次复查日期复查，然后结案。",
    "followup.all": "全部", "followup.finding": "筛查发现", "followup.apply": "筛选",
    "followup.count": "共 {n} 名学生。",
    "followup.shown": "仅显示前 {n} 名，请用筛选条件缩小范围。",
    "followup.next_check": "下次复查", "followup.step": "记录处理", "followup.save": "保存",
    "followup.alerts": "校医预警",
    "finding.screening_myopia": "筛查性近视", "finding.visual_impairment": "视力低下", "finding.overweight": "超重",
    "finding.obesity": "肥胖", "finding.wasting": "消瘦", "finding.stunting": "生长迟缓",
    "finding.fitness_fail": "体质健康测试不及格（体育教师）", "finding.fitness_item_fail": "体质测试单项不及格",
    "fitness.total": "总分 {total}", "fitness.items": "不及格项目：{items}",
    "fstate.to_notify": "待告知", "fstate.parents_notified": "已告知家长", "fstate.referred": "已转诊",
    "fstate.rechecked": "已复查", "fstate.closed": "已结案",
    "letters.letter": "告家长书", "letters.class_vision": "本班视力筛查告家长书",
    "letters.class_growth": "本班生长发育筛查告家长书",
    "screening.lookup_help": "输入学籍号或姓名的前几个字：性别和出生日期将从花名册自动填入。",
    "screening.not_on_roster": "您负责的学校花名册中没有该学生：请核对学籍号，或填写性别和出生日期。",
    "nav.class_sheet": "班级筛查表", "sheet.title": "班级筛查表",
    "sheet.choose": "请选择班级。学生姓名、性别和年龄取自花名册。", "sheet.students": "学生数",
    "sheet.no_roster": "您负责的学校花名册中还没有学生。", "sheet.all_classes": "全部班级",
    "sheet.no_students": "花名册中目前没有该班学生。",
    "sheet.keys": "输入数值后按回车到下一格；一行最后一格按回车到下一名学生。离开一行时自动校验、判定并保存。",
    "sheet.progress": "已保存 {saved} / {total} 名学生", "sheet.result": "结果",
    "sheet.saving": "正在保存……", "sheet.saved": "已保存", "sheet.failed": "未保存，请重试",
    "sheet.nothing": "这一行没有填写内容。", "sheet.normal.bmi": "体重正常",
    "sheet.normal.vision": "视力正常",
    "sheet.ucva_right": "右眼视力", "sheet.ucva_left": "左眼视力", "sheet.se_right": "右眼球镜(D)",
    "sheet.se_left": "左眼球镜(D)", "sheet.wears_glasses": "戴镜",
    "letter.about": "关于您的孩子", "letters.count": "共 {n} 份", "letters.none": "本班没有学生有此类筛查结果。",
    "letters.meaning": "结果说明", "letters.todo": "建议", "letters.normal": "结果在正常范围内。",
    "letters.from": "校医室", "letters.slip": "回执（请交回校医）",
    "letters.slip_text": "我已知晓 {name} 的筛查结果。请于 {by} 前交回本回执。",
    "letters.slip_fields": "就诊医院：____________  诊断结果：____________  家长签名：____________  日期：________",
})

# Physical fitness (国家学生体质健康标准): the class sheet's fitness form and the upload sheet's page.
_EN.update({
    "sheet.fitness.title": "Physical fitness sheet", "sheet.fitness.open": "Fitness tests",
    "sheet.fitness.help": "Type each result as measured (50 m 8.5, sit-and-reach -2.5, 800 m 3'35 or 215), "
        "免测 for an item exempted on application (every item: the student is exempt; give the reason), or leave "
        "it blank if not measured (never 0). – marks an item not tested for that student's sex.",
    "sheet.fitness.not_tested": "not tested for this sex and grade", "sheet.fitness.exempt": "exempt (免测)",
    "sheet.fitness.total": "total {total}, {band}", "sheet.fitness.incomplete": "incomplete, no total: missing {items}",
    "sheet.fitness.exempt_items": "exempt: {items}", "sheet.fitness.failed": "item failed: {items}",
    "sheet.no_grade": "The roster has no grade for this student: the fitness tables depend on it.",
    "field.attempt": "Attempt", "attempt.first": "First test", "attempt.retest": "Retest (补测)",
    "field.exemption_reason": "Exemption reason", "field.grade_code": "Grade code",
    "fitness.item.vital_capacity": "Vital capacity (ml)", "fitness.item.run_50m": "50 m (s)",
    "fitness.item.sit_and_reach": "Sit-and-reach (cm)", "fitness.item.rope_skipping_1min": "Rope skipping (1 min)",
    "fitness.item.sit_ups_1min": "Sit-ups (1 min)", "fitness.item.shuttle_run_50m_x8": "50 m × 8 shuttle",
    "fitness.item.standing_long_jump": "Standing long jump (cm)", "fitness.item.pull_ups": "Pull-ups",
    "fitness.item.run_1000m": "1000 m", "fitness.item.run_800m": "800 m",
    "field.vital_capacity_ml": "Vital capacity (ml)", "field.run_50m_s": "50 m run (s)",
    "field.sit_and_reach_cm": "Sit-and-reach (cm)", "field.rope_skipping_count": "1-minute rope skipping",
    "field.sit_ups_count": "1-minute sit-ups", "field.shuttle_run_50m_x8_s": "50 m × 8 shuttle run",
    "field.standing_long_jump_cm": "Standing long jump (cm)", "field.pull_ups_count": "Pull-ups",
    "field.run_800m_s": "800 m run", "field.run_1000m_s": "1000 m run",
    "band.excellent": "excellent", "band.good": "good", "band.pass": "pass", "band.fail": "fail",
    "nav.fitness_upload": "Upload fitness results", "fitness_upload.title": "Upload the national fitness upload sheet",
    "fitness_upload.help": "The sheet your school uploads to the national student physical fitness data system "
        "(国家学生体质健康标准数据上报), CSV or XLSX: grade code (年级编号), student number (学籍号), sex (1 male, "
        "2 female, or 男/女) and the item columns by their Chinese headings. Names never leave the file's reading.",
    "fitness_upload.school": "School", "fitness_upload.measured_on": "Test date",
    "fitness_upload.preview_title": "Fitness results: preview before publishing",
    "fitness_upload.done": "{accepted} tests were published; {rejected} rejected rows were recorded.",
})
_ZH.update({
    "sheet.fitness.title": "班级体质测试表", "sheet.fitness.open": "体质测试",
    "sheet.fitness.help": "按实测填写成绩（50米跑 8.5，坐位体前屈 -2.5，800米跑 3'35 或 215 秒）；经申请免测的项目填“免测”"
        "（全部项目免测即为免测学生，请填写免测原因）；未测的项目留空（不要填 0）。“–”表示该性别不测此项目。",
    "sheet.fitness.not_tested": "该年级该性别不测此项目", "sheet.fitness.exempt": "免测",
    "sheet.fitness.total": "总分 {total}，{band}", "sheet.fitness.incomplete": "测试不完整，不计总分：缺 {items}",
    "sheet.fitness.exempt_items": "免测：{items}", "sheet.fitness.failed": "单项不及格：{items}",
    "sheet.no_grade": "花名册中没有该学生的年级：体质评分表按年级区分。",
    "field.attempt": "测试类型", "attempt.first": "首测", "attempt.retest": "补测",
    "field.exemption_reason": "免测原因", "field.grade_code": "年级编号",
    "fitness.item.vital_capacity": "肺活量(ml)", "fitness.item.run_50m": "50米跑(秒)",
    "fitness.item.sit_and_reach": "坐位体前屈(cm)", "fitness.item.rope_skipping_1min": "一分钟跳绳",
    "fitness.item.sit_ups_1min": "一分钟仰卧起坐", "fitness.item.shuttle_run_50m_x8": "50米×8往返跑",
    "fitness.item.standing_long_jump": "立定跳远(cm)", "fitness.item.pull_ups": "引体向上",
    "fitness.item.run_1000m": "1000米跑", "fitness.item.run_800m": "800米跑",
    "field.vital_capacity_ml": "肺活量", "field.run_50m_s": "50米跑", "field.sit_and_reach_cm": "坐位体前屈",
    "field.rope_skipping_count": "一分钟跳绳", "field.sit_ups_count": "一分钟仰卧起坐",
    "field.shuttle_run_50m_x8_s": "50米×8往返跑", "field.standing_long_jump_cm": "立定跳远",
    "field.pull_ups_count": "引体向上", "field.run_800m_s": "800米跑", "field.run_1000m_s": "1000米跑",
    "band.excellent": "优秀", "band.good": "良好", "band.pass": "及格", "band.fail": "不及格",
    "nav.fitness_upload": "上传体质测试数据", "fitness_upload.title": "上传国家学生体质健康数据上报表",
    "fitness_upload.help": "即学校上报中国学生体质健康网的数据表（CSV 或 XLSX）：年级编号、学籍号、性别（1 男，2 女，或 男/女）"
        "及各测试项目列（中文列名）。姓名只在读取文件时使用，不会保存。",
    "fitness_upload.school": "学校", "fitness_upload.measured_on": "测试日期",
    "fitness_upload.preview_title": "体质测试数据：发布前预览",
    "fitness_upload.done": "已发布 {accepted} 条测试成绩；已记录 {rejected} 个被拒绝的行。",
})

MESSAGES: Mapping[str, Mapping[str, str]] = MappingProxyType({"en": _EN, "zh-CN": _ZH})


def translate(language: str, key: str, **values: object) -> str:
    """The message `key` in `language` (falling back to English, then to the key itself)."""
    text = MESSAGES.get(language, _EN).get(key) or _EN.get(key) or key
    return text.format(**values) if values else text


def label(language: str, prefix: str, code: object) -> str:
    """A data code (a concern, a category) in `language`; the code itself if it has no message."""
    if code is None:
        return "–"
    key = f"{prefix}.{str(code).lower()}"
    catalogue = MESSAGES.get(language, _EN)
    return catalogue.get(key) or _EN.get(key) or str(code)


def pick_language(cookie: str | None, accept_language: str | None) -> str:
    if cookie in LANGUAGES:
        return cookie
    if accept_language and accept_language.strip().lower().startswith("en"):
        return "en"
    return DEFAULT_LANGUAGE
