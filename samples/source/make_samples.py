"""Regenerate the binary sample documents in samples/.

The sample set describes a fictional company, Brightwater Analytics GmbH (Leipzig),
and its product Brightwater Insight. This script writes the generated files:

    samples/employee-handbook.pdf         (10 pages, made with fpdf2)
    samples/it-security-policy.docx       (made with python-docx)
    samples/software-licences-2024.xlsx   (one sheet, made with openpyxl)
    samples/product-roadmap-2024.pptx     (four slides with a table and notes, python-pptx)
    samples/office-move.eml               (an e-mail with a 2-page PDF attachment, fpdf2)
    samples/scanned-facilities-notice.pdf (one page that is only an image, a scan read by OCR; Pillow)

The other samples (expense-policy.html, onboarding-guide.md, product-faq.txt) are
written by hand and are not generated.

Requirements, only needed to regenerate (the generated files are committed):
    pip install fpdf2                    # from PyPI; python-docx, python-pptx and openpyxl come with kb

Run from anywhere:
    python samples/source/make_samples.py

The PDF uses the DejaVu Sans TrueType font when it is installed (Debian package
fonts-dejavu-core) and falls back to the built-in Helvetica otherwise; the text
is kept to plain ASCII so both fonts can show it. The committed PDF was made with
DejaVu Sans; with Helvetica the line breaks differ, so after regenerating check that
every expected answer in samples/questions.jsonl still sits on one line of its page
(pypdf: PdfReader(path).pages[i].extract_text()).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent.parent
FIXED_DATE = _dt.datetime(2024, 3, 1, 9, 0, 0, tzinfo=_dt.timezone.utc)

COMPANY = "Brightwater Analytics GmbH"

# ---------------------------------------------------------------------------
# Employee handbook (PDF): one section per page. Each page is a heading and a
# list of (subheading, paragraph) pairs; a subheading of None means a plain
# paragraph. Lines starting with "- " inside a paragraph are bullet points.
# ---------------------------------------------------------------------------

HANDBOOK_TITLE = "Employee Handbook"
HANDBOOK_VERSION = "3.1"

HANDBOOK_PAGES: list[tuple[str, list[tuple[str | None, str]]]] = [
    (
        "1. Welcome to Brightwater Analytics",
        [
            (None,
             "Brightwater Analytics GmbH develops Brightwater Insight, a cloud analytics "
             "platform used by more than 400 customers across Europe. The company was founded "
             "in 2014 in Leipzig and today employs around 140 people at its headquarters at "
             "Karl-Heine-Strasse 42, 04229 Leipzig, Germany."),
            ("About this handbook",
             "This Employee Handbook explains the rules and benefits that apply to all employees "
             "of Brightwater Analytics GmbH. It applies to permanent and fixed-term employees. "
             "Working students and interns are covered by separate agreements unless stated "
             "otherwise. Where this handbook and your employment contract differ, your contract "
             "takes precedence."),
            ("Version and owner",
             "This is version 3.1 of the handbook, effective 1 January 2024. It replaces version "
             "3.0 of March 2022. The handbook is owned by the People Team (HR). Questions about "
             "the handbook should be addressed to Markus Brandt, Head of People, at extension 214 "
             "or hr@brightwater.example."),
            ("Related policies",
             "- The IT Security Policy (document ITS-001) governs the use of laptops, accounts, "
             "passwords and company data.\n"
             "- The Expense Policy governs travel costs, per diems, hotel limits and the "
             "reimbursement of business expenses.\n"
             "- The Onboarding Guide describes your first week, your accounts and the buddy "
             "programme for new employees."),
            (None,
             "We wish you a good start and a great time at Brightwater.\n"
             "Dr. Helena Vogt, Managing Director (CEO)"),
        ],
    ),
    (
        "2. Working Hours",
        [
            ("Regular working time",
             "The regular working time for full-time employees is 40 hours per week, Monday to "
             "Friday. Part-time arrangements are possible by agreement with your manager and the "
             "People Team."),
            ("Flexitime and core hours",
             "Brightwater uses flexible working hours. You may start work between 07:00 and 10:00 "
             "and finish between 15:00 and 20:00. The core hours, during which all employees are "
             "expected to be available for meetings and calls, are 10:00 to 15:00 from Monday to "
             "Thursday and 10:00 to 13:00 on Fridays."),
            ("Breaks",
             "For a working day of more than six hours you must take a break of at least 30 "
             "minutes; for more than nine hours, a break of at least 45 minutes. Breaks are unpaid "
             "and are not counted as working time."),
            ("Time recording",
             "All working time is recorded in TimeTrack, the company's time recording system. "
             "Please record your hours by the end of each week. Your manager approves your "
             "timesheet at the end of each month."),
            ("Overtime",
             "Overtime must be approved in advance by your manager. Approved overtime is credited "
             "to your time account and compensated with time off. The time account may hold at "
             "most 40 hours; any balance above this limit must be reduced within three months. "
             "Overtime is not paid out, except for employees of the Customer Support team who are "
             "on on-call duty."),
            ("Public holidays",
             "The public holidays of the Free State of Saxony apply. In addition, 24 December and "
             "31 December are company days off and do not count against your annual leave."),
        ],
    ),
    (
        "3. Annual Leave",
        [
            ("Entitlement",
             "Full-time employees are entitled to 28 days of paid annual leave per calendar year, "
             "based on a five-day working week. Part-time employees receive leave pro rata to "
             "their working days. In the year of joining or leaving, leave is calculated pro rata "
             "for each full month of employment."),
            ("Requesting leave",
             "Leave is requested in PeopleHub, our HR portal. Requests for more than three "
             "consecutive working days should be submitted at least two weeks in advance. Your "
             "manager approves or declines the request within five working days. Please "
             "coordinate longer absences with your team, especially during the summer months."),
            ("Carry-over of unused leave",
             "Leave should be taken in the year in which it is earned. Up to 5 days of unused "
             "leave may be carried over into the following year. The deadline for taking "
             "carried-over days is 31 March of the following year; days not taken by then are "
             "forfeited. "
             "Exceptions, for example after a long illness or parental leave, require written "
             "approval from the People Team."),
            ("Special leave",
             "Paid special leave is granted for the following personal events:\n"
             "- 2 days for your own wedding or registered partnership\n"
             "- 1 day for moving house (at most once per calendar year)\n"
             "- 2 days on the death of a close family member"),
            ("Long service",
             "Additional leave for long service is described in Section 9 (Benefits)."),
        ],
    ),
    (
        "4. Sick Leave and Reporting Illness",
        [
            ("Reporting an absence",
             "If you are unable to work because of illness, inform your manager and the People "
             "Team before 09:30 on the first day of your absence, by phone or by Slack message, "
             "and record the absence in PeopleHub. Please state how long you expect to be absent. "
             "You do not have to share details of your diagnosis."),
            ("Medical certificate",
             "A medical certificate is required from the fourth calendar day of illness. Doctors "
             "in Germany report the certificate electronically to your statutory health insurer "
             "(eAU), and the People Team retrieves it from there. Employees with private health "
             "insurance send a scan of the certificate to sick@brightwater.example."),
            ("Continued pay",
             "Your salary continues to be paid for up to six weeks for the same illness. After "
             "six weeks, statutory health insurance pays sickness benefit (Krankengeld)."),
            ("Illness during annual leave",
             "If you fall ill during your annual leave and provide a medical certificate, the "
             "days of illness are not counted as leave and are credited back to your leave "
             "balance in PeopleHub."),
            ("Sick children",
             "If your child under 12 is ill and needs care at home, inform your manager in the "
             "same way as for your own illness. The statutory child sick days are paid by your "
             "health insurance, not by the company."),
            ("Returning after a long illness",
             "If you have been unable to work for more than six weeks within twelve months, the "
             "People Team offers you a confidential return-to-work conversation (BEM)."),
        ],
    ),
    (
        "5. Remote Work",
        [
            ("Hybrid model",
             "Brightwater follows a hybrid working model. Employees whose role allows it may work "
             "remotely on up to 3 days per week. Tuesday is our team day: all employees are "
             "expected in the Leipzig office on Tuesdays unless they are on leave, ill or "
             "travelling on business."),
            ("Where you may work",
             "Remote work is normally done from your home in Germany. Working from another EU "
             "country is possible for up to 20 working days per calendar year, subject to "
             "approval. Because of tax and social security rules, such requests must reach the "
             "People Team at least 4 weeks in advance. Working from outside the EU is not "
             "permitted."),
            ("Equipment for your home office",
             "Every employee receives a laptop and headset. For your home workplace you can order "
             "additional equipment, such as a monitor or an office chair, from a one-time home "
             "office budget of EUR 400 through the IT Service Desk. The equipment remains company "
             "property and must be returned when you leave."),
            ("Security when working remotely",
             "Always connect through the company VPN and follow the IT Security Policy. Do not "
             "work on confidential documents in trains, cafes or other public places where others "
             "can see your screen."),
            ("Availability",
             "Remote working time is recorded in TimeTrack just like office time, and the core "
             "hours apply. Keep your Slack status up to date and be reachable by phone during "
             "core hours. The monthly home office allowance is described in Section 9."),
        ],
    ),
    (
        "6. Parental Leave",
        [
            ("Statutory parental leave",
             "Employees are entitled to parental leave (Elternzeit) under the German Federal "
             "Parental Allowance and Parental Leave Act (BEEG) of up to three years per child. "
             "Parental leave must be requested in writing at least 7 weeks before it begins; for "
             "leave between the child's third and eighth birthday the notice period is 13 weeks. "
             "Please submit the request through PeopleHub and inform your manager."),
            ("Parental allowance",
             "Parental allowance (Elterngeld) is paid by the state, not by the company. The "
             "People Team provides the salary certificate needed for the application."),
            ("Partner leave",
             "In addition to the statutory entitlements, Brightwater grants 10 working days of "
             "paid partner leave to the second parent after the birth or adoption of a child. "
             "Partner leave must be taken within 8 weeks of the birth or adoption."),
            ("Part-time work during parental leave",
             "You may work part-time for up to 32 hours per week during parental leave. Please "
             "discuss the arrangement with your manager and the People Team before your leave "
             "starts."),
            ("Maternity protection",
             "Expectant mothers should inform the People Team as early as possible so that the "
             "protections of the Maternity Protection Act can be applied. The maternity "
             "protection period begins six weeks before the expected date of delivery and ends "
             "eight weeks after the birth."),
            ("Returning to work",
             "After parental leave you return to your previous position or an equivalent one. "
             "About 4 weeks before your return, the People Team invites you and your manager to a "
             "return meeting."),
        ],
    ),
    (
        "7. Code of Conduct",
        [
            ("Respect",
             "We treat colleagues, customers and partners with respect. Discrimination, "
             "harassment and bullying are not tolerated, whether in the office, at company events "
             "or online. Violations can lead to disciplinary action up to dismissal."),
            ("Gifts and hospitality",
             "Employees may accept gifts from business partners only up to a value of EUR 35 per "
             "gift. Gifts above this value must be declined or reported to the Compliance "
             "Officer. Cash gifts are never permitted. Travel costs and client entertainment are "
             "governed by the Expense Policy."),
            ("Conflicts of interest",
             "Secondary employment, investments in competitors or suppliers, and close personal "
             "relationships with someone you manage must be disclosed to the People Team in "
             "advance. Secondary employment requires written approval."),
            ("Confidentiality",
             "Customer data, source code and internal financial information are confidential. "
             "This obligation continues after you leave the company. The handling of data is set "
             "out in the IT Security Policy."),
            ("Speaking up",
             "Concerns about misconduct can be raised with your manager, the People Team or the "
             "Compliance Officer, Dr. Anna Leitner (extension 299, compliance@brightwater.example). "
             "Anonymous reports can be made through the whistleblowing portal at "
             "integrity.brightwater.example. Retaliation against anyone who raises a concern in "
             "good faith is prohibited."),
            ("Social media",
             "Do not speak on behalf of Brightwater in public without approval from the "
             "Communications team."),
        ],
    ),
    (
        "8. Performance Reviews",
        [
            ("Review cycle",
             "Brightwater holds two review conversations per year: a mid-year check-in in July "
             "and the annual performance review in January. Both are documented in PeopleHub."),
            ("Preparation",
             "Before the annual review, you complete a self-assessment and your manager completes "
             "a manager assessment in PeopleHub. You also request 360-degree feedback from at "
             "least three colleagues."),
            ("Rating scale",
             "Performance is rated on a five-point scale:\n"
             "- 1: below expectations\n"
             "- 2: partly meets expectations\n"
             "- 3: meets expectations\n"
             "- 4: exceeds expectations\n"
             "- 5: outstanding"),
            ("Salary review",
             "Salary adjustments resulting from the annual performance review take effect on "
             "1 April of the same year. Your manager informs you of the outcome by 15 March."),
            ("Goals",
             "Team and individual goals are set quarterly as OKRs and reviewed in your regular "
             "one-to-one meetings."),
            ("New employees and disagreements",
             "Employees in their probation period have a probation review in the fifth month "
             "instead of the annual review. If you disagree with your rating, you may request a "
             "second conversation with your manager's manager within 14 days."),
        ],
    ),
    (
        "9. Benefits",
        [
            ("Public transport",
             "Brightwater pays the full cost of the Deutschlandticket for every employee who "
             "wants one. The ticket is ordered through PeopleHub."),
            ("Company pension",
             "Brightwater contributes 4% of your gross salary to the company pension scheme, "
             "provided that you contribute at least 2% of your gross salary yourself through "
             "deferred compensation."),
            ("Learning and development",
             "Every employee has a personal learning budget of EUR 1,200 per calendar year for "
             "courses, conferences, books and certifications, plus 3 learning days per year. "
             "Unused budget does not carry over into the next year. Requests are approved by your "
             "manager."),
            ("Home office allowance",
             "Employees who regularly work remotely receive a monthly home office allowance of "
             "EUR 25, paid with the salary. It is in addition to the one-time home office budget "
             "described in Section 5."),
            ("Long service",
             "After five years of service you receive one additional day of annual leave per "
             "year, that is 29 days in total for full-time employees."),
        ],
    ),
    (
        "9. Benefits (continued) and Key Contacts",
        [
            ("Bike leasing",
             "You can lease up to two bicycles or e-bikes through salary conversion. Brightwater "
             "pays the insurance and the annual service for leased bikes."),
            ("Sports and wellbeing",
             "Brightwater subsidises gym and sports club memberships with EUR 30 per month. "
             "Employees and their families can also use a free and confidential counselling "
             "service around the clock on +49 800 555 0199."),
            ("Employee events",
             "The company pays for one team event per team and quarter, with a budget of up to "
             "EUR 40 per person."),
            ("Key contacts",
             "- People Team (HR): Markus Brandt, Head of People, extension 214, "
             "hr@brightwater.example\n"
             "- Payroll: Sabine Krueger, extension 218, payroll@brightwater.example\n"
             "- Compliance Officer: Dr. Anna Leitner, extension 299\n"
             "- IT Service Desk: extension 300, servicedesk@brightwater.example\n"
             "- Reception Leipzig: extension 100"),
        ],
    ),
]


def _pick_font(pdf) -> str:
    dejavu = Path("/usr/share/fonts/truetype/dejavu")
    regular, bold = dejavu / "DejaVuSans.ttf", dejavu / "DejaVuSans-Bold.ttf"
    if regular.exists() and bold.exists():
        pdf.add_font("DejaVu", "", str(regular))
        pdf.add_font("DejaVu", "B", str(bold))
        return "DejaVu"
    return "Helvetica"


def make_handbook(path: Path) -> None:
    from fpdf import FPDF

    class Handbook(FPDF):
        font_name = "Helvetica"

        def footer(self) -> None:
            self.set_y(-15)
            self.set_font(self.font_name, "", 8)
            self.set_text_color(110, 110, 110)
            self.cell(
                0, 10,
                f"{COMPANY} - {HANDBOOK_TITLE} v{HANDBOOK_VERSION} - Page {self.page_no()} of {{nb}}",
                align="C",
            )
            self.set_text_color(0, 0, 0)

    pdf = Handbook(format="A4")
    pdf.font_name = _pick_font(pdf)
    font = pdf.font_name
    pdf.set_title(f"{COMPANY} {HANDBOOK_TITLE}")
    pdf.set_author("People Team, " + COMPANY)
    pdf.set_subject("Employee Handbook, version " + HANDBOOK_VERSION)
    pdf.set_creator("samples/source/make_samples.py")
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_margins(22, 20, 22)
    pdf.set_auto_page_break(True, margin=22)

    for heading, parts in HANDBOOK_PAGES:
        pdf.add_page()
        start_page = pdf.page_no()
        pdf.set_font(font, "", 8)
        pdf.set_text_color(110, 110, 110)
        pdf.cell(0, 5, f"{COMPANY} | {HANDBOOK_TITLE}", new_x="LMARGIN", new_y="NEXT", align="L")
        pdf.set_text_color(0, 0, 0)
        pdf.ln(4)
        pdf.set_font(font, "B", 17)
        pdf.set_text_color(16, 72, 120)
        pdf.multi_cell(0, 9, heading, new_x="LMARGIN", new_y="NEXT", align="L")
        pdf.set_text_color(0, 0, 0)
        pdf.ln(3)
        for sub, text in parts:
            if sub:
                pdf.set_font(font, "B", 11.5)
                pdf.multi_cell(0, 6.5, sub, new_x="LMARGIN", new_y="NEXT", align="L")
                pdf.ln(0.5)
            pdf.set_font(font, "", 10.5)
            for line in text.split("\n"):
                if line.startswith("- "):
                    pdf.set_x(pdf.l_margin + 4)
                    pdf.multi_cell(0, 5.6, "- " + line[2:], new_x="LMARGIN", new_y="NEXT", align="L")
                else:
                    pdf.multi_cell(0, 5.6, line, new_x="LMARGIN", new_y="NEXT", align="L")
            pdf.ln(3)
        if pdf.page_no() != start_page:
            raise SystemExit(f"section {heading!r} overflowed onto a second page; shorten it")

    pdf.output(str(path))


# ---------------------------------------------------------------------------
# IT security policy (DOCX). A list of blocks:
#   ("h1"|"h2", text)  heading
#   ("p", text)        paragraph
#   ("bullets", [..])  bulleted list
#   ("table", [header, row, ...])
# ---------------------------------------------------------------------------

POLICY_TITLE = "IT Security Policy"

POLICY_BLOCKS: list[tuple] = [
    ("p", "Brightwater Analytics GmbH | Document ITS-001 | Version 2.3 | Effective 1 March 2024 | "
          "Classification: Internal"),
    ("p", "Owner: Priya Raman, Information Security Officer. Approved by Dr. Helena Vogt, "
          "Managing Director."),
    ("h1", "1. Purpose and Scope"),
    ("p", "This policy sets out the minimum security rules for all employees, contractors and "
          "interns of Brightwater Analytics GmbH who use company devices, accounts or data. It "
          "protects our own information and the data that customers entrust to us in "
          "Brightwater Insight. Breaches of this policy may lead to disciplinary action."),
    ("h1", "2. Passwords and Authentication"),
    ("h2", "2.1 Password requirements"),
    ("p", "All passwords for company accounts must meet the requirements in the table below. "
          "Use a passphrase of several random words where possible."),
    ("table", [
        ("Requirement", "Rule"),
        ("Minimum length", "14 characters"),
        ("Composition", "No fixed character classes required; passphrases are encouraged"),
        ("Reuse", "The last 10 passwords cannot be reused"),
        ("Change", "Only when a compromise is suspected; admin accounts every 12 months"),
        ("Failed logins", "Account locked for 30 minutes after 10 failed attempts"),
        ("Storage", "Only in the company password manager, Bitwarden"),
    ]),
    ("p", "Never share your password with anyone, including the IT Service Desk. The IT Service "
          "Desk will never ask you for your password."),
    ("h2", "2.2 Multi-factor authentication (MFA)"),
    ("p", "Multi-factor authentication is mandatory for all company accounts, including email, "
          "Slack, the VPN, PeopleHub and all Brightwater Insight administration consoles. Use "
          "the Microsoft Authenticator app or a hardware security key. SMS codes are not "
          "accepted as a second factor. Administrators must use a hardware security key."),
    ("h1", "3. Devices"),
    ("h2", "3.1 Laptops"),
    ("bullets", [
        "All laptops must use full-disk encryption: BitLocker on Windows and FileVault on macOS. "
        "The IT Service Desk enables encryption before a laptop is handed out.",
        "The screen must lock automatically after 5 minutes of inactivity. Lock your screen "
        "manually whenever you leave your laptop.",
        "Operating system updates must be installed within 14 days of release. Critical "
        "security patches must be installed within 72 hours.",
        "Only software from the company Software Center may be installed. New software is "
        "requested through a Service Desk ticket; approval takes up to 5 working days.",
    ]),
    ("h2", "3.2 Mobile phones and removable media"),
    ("p", "Company email on a private phone is allowed only through the managed Outlook app "
          "with a device PIN of at least 6 digits. Private USB storage devices must not be "
          "connected to company laptops. Use the company file share to exchange files."),
    ("h2", "3.3 Lost or stolen devices"),
    ("p", "A lost or stolen laptop or phone is a security incident and must be reported as "
          "described in Section 6, so that the device can be locked and wiped remotely."),
    ("h1", "4. Data Classification"),
    ("p", "All company information belongs to one of four classification levels. The owner of "
          "a document sets its level; when in doubt, choose the higher level."),
    ("table", [
        ("Level", "Examples", "Handling"),
        ("Public", "Website content, published product documentation",
         "No restrictions"),
        ("Internal", "Employee handbook, internal wiki, meeting notes",
         "Share only with employees and contractors"),
        ("Confidential", "Customer data, contracts, source code",
         "Need-to-know access; encrypted when sent outside the company"),
        ("Strictly Confidential", "Payroll data, health data, security keys, M&A plans",
         "Named individuals only; never stored on removable media"),
    ]),
    ("h1", "5. Network, Email and Remote Access"),
    ("bullets", [
        "Outside the office, internal systems may only be reached through the GlobalProtect "
        "VPN. Public Wi-Fi may only be used with the VPN switched on.",
        "Visitors use the guest Wi-Fi network BW-Guest, which has no access to internal systems.",
        "Report suspicious emails with the Report Phish button in Outlook or forward them to "
        "phishing@brightwater.example. Do not click links or open attachments in suspicious "
        "emails.",
        "All employees must complete the annual security awareness training by 30 November "
        "each year. New employees complete it during their first week.",
    ]),
    ("h1", "6. Incident Reporting"),
    ("p", "Every suspected security incident must be reported within 1 hour of discovery. "
          "Examples are a lost or stolen device, a phishing email you clicked, malware warnings, "
          "a password you may have disclosed, or customer data sent to the wrong recipient. "
          "Report incidents to the security mailbox security@brightwater.example or call the "
          "security hotline at extension 333. Outside office hours, call the on-call number "
          "+49 341 555 0333. Do not try to investigate the incident yourself and do not delete "
          "any evidence."),
    ("h2", "6.1 Incident response contacts"),
    ("table", [
        ("Role", "Name", "Extension", "Email"),
        ("Information Security Officer", "Priya Raman", "330", "priya.raman@brightwater.example"),
        ("Security hotline (24/7 on-call)", "Security team", "333", "security@brightwater.example"),
        ("IT Service Desk (Mon-Fri 07:30-18:00)", "Service Desk team", "300",
         "servicedesk@brightwater.example"),
        ("Data Protection Officer", "Stefan Albers", "340", "dpo@brightwater.example"),
    ]),
    ("p", "If personal data is affected, the Data Protection Officer decides whether the "
          "incident must be reported to the supervisory authority, which must happen within "
          "72 hours under the GDPR."),
    ("h1", "7. Review"),
    ("p", "This policy is reviewed at least once a year by the Information Security Officer. "
          "The next review is due in February 2025."),
]


def make_policy(path: Path) -> None:
    from docx import Document
    from docx.shared import Pt

    doc = Document()
    doc.core_properties.title = f"{COMPANY} {POLICY_TITLE}"
    doc.core_properties.author = "Priya Raman"
    doc.core_properties.last_modified_by = "Priya Raman"
    doc.core_properties.created = FIXED_DATE.replace(tzinfo=None)
    doc.core_properties.modified = FIXED_DATE.replace(tzinfo=None)
    doc.core_properties.revision = 1
    doc.styles["Normal"].font.size = Pt(11)

    doc.add_heading(POLICY_TITLE, level=0)
    for kind, content in POLICY_BLOCKS:
        if kind == "h1":
            doc.add_heading(content, level=1)
        elif kind == "h2":
            doc.add_heading(content, level=2)
        elif kind == "p":
            doc.add_paragraph(content)
        elif kind == "bullets":
            for item in content:
                doc.add_paragraph(item, style="List Bullet")
        elif kind == "table":
            header, *rows = content
            table = doc.add_table(rows=1, cols=len(header))
            table.style = "Table Grid"
            for cell, text in zip(table.rows[0].cells, header):
                cell.text = ""
                cell.paragraphs[0].add_run(text).bold = True
            for row in rows:
                cells = table.add_row().cells
                for cell, text in zip(cells, row):
                    cell.text = text
        else:
            raise ValueError(kind)

    footer = doc.sections[0].footer.paragraphs[0]
    footer.text = f"{COMPANY} - ITS-001 {POLICY_TITLE} v2.3 - Internal"
    doc.save(str(path))
    _fix_zip_timestamps(path)


# ---------------------------------------------------------------------------
# Software licences (XLSX), product roadmap (PPTX) and an office-move e-mail
# with a PDF attachment (EML): answers that sit only in a spreadsheet row, a
# slide, an e-mail body and an e-mail attachment.
# ---------------------------------------------------------------------------

LICENCES_TITLE = "Software licences, status 1 March 2024 (maintained by the IT Service Desk)"
LICENCES_HEADER = ("Tool", "Vendor", "Seats", "Renews on", "Owner team")
LICENCES_ROWS = [
    ("Jira Software", "Atlassian", 135, _dt.date(2024, 11, 30), "Engineering"),
    ("Zendesk Suite", "Zendesk", 20, _dt.date(2025, 2, 28), "Customer Support"),
    ("Salesforce Sales Cloud", "Salesforce", 28, _dt.date(2024, 9, 30), "Sales Operations"),
    ("Figma Organization", "Figma", 12, _dt.date(2025, 1, 15), "Marketing"),
    ("Adobe Acrobat Pro", "Adobe", 40, _dt.date(2024, 12, 31), "IT Service Desk"),
    ("Miro Business", "Miro", 60, _dt.date(2024, 7, 31), "People Team"),
]
LICENCES_NOTE = "Request additional seats through a Service Desk ticket; unused seats are reclaimed after 60 days."


def make_licences(path: Path) -> None:
    import openpyxl
    from openpyxl.styles import Font

    wb = openpyxl.Workbook()
    wb.properties.creator = "IT Service Desk"
    wb.properties.title = "Software licences 2024"
    wb.properties.created = FIXED_DATE.replace(tzinfo=None)
    wb.properties.modified = FIXED_DATE.replace(tzinfo=None)
    ws = wb.active
    ws.title = "Licences"
    ws.append([LICENCES_TITLE])
    ws["A1"].font = Font(bold=True, size=13)
    ws.append([])
    ws.append(list(LICENCES_HEADER))
    for cell in ws[3]:
        cell.font = Font(bold=True)
    for row in LICENCES_ROWS:
        ws.append(list(row))
        ws.cell(ws.max_row, 4).number_format = "yyyy-mm-dd"
    ws.append([])
    ws.append([LICENCES_NOTE])
    for column, width in zip("ABCDE", (26, 14, 8, 14, 20)):
        ws.column_dimensions[column].width = width
    wb.save(path)
    _fix_zip_timestamps(path, core_modified=True)


ROADMAP_TITLE = "Product roadmap 2024"
ROADMAP_SLIDES = [
    ("Insight 4.3: connectors and reports", [
        "Snowflake and BigQuery connectors",
        "Scheduled PDF reports by e-mail",
        "Beta for selected customers in August 2024",
    ], "Stress that the connectors were the most requested feature in the customer survey."),
    ("Deprecations", [
        "The legacy REST API v1 is switched off on 31 January 2025.",
        "Customers move to the REST API v2; a migration guide is in the developer portal.",
    ], "Customer Success contacts every customer who still calls API v1."),
]
ROADMAP_RELEASES = [
    ("Release", "Target date", "Focus"),
    ("Insight 4.3", "9 September 2024", "Connectors and scheduled reports"),
    ("Insight 4.4", "2 December 2024", "Data lineage and audit log"),
]


def make_roadmap(path: Path) -> None:
    from pptx import Presentation
    from pptx.util import Inches, Pt

    deck = Presentation()
    props = deck.core_properties
    props.title = ROADMAP_TITLE
    props.author = "Product Team"
    props.created = props.modified = FIXED_DATE.replace(tzinfo=None)
    props.last_modified_by = "Product Team"
    props.revision = 1
    slide = deck.slides.add_slide(deck.slide_layouts[0])
    slide.shapes.title.text = ROADMAP_TITLE
    slide.placeholders[1].text = "Product Team, March 2024"
    for title, bullets, notes in ROADMAP_SLIDES[:1]:
        _bullet_slide(deck, title, bullets, notes)
    slide = deck.slides.add_slide(deck.slide_layouts[5])
    slide.shapes.title.text = "Release dates"
    table = slide.shapes.add_table(len(ROADMAP_RELEASES), 3, Inches(0.7), Inches(2), Inches(8.6), Inches(2)).table
    for r, row in enumerate(ROADMAP_RELEASES):
        for c, value in enumerate(row):
            cell = table.cell(r, c)
            cell.text = value
            cell.text_frame.paragraphs[0].runs[0].font.size = Pt(16)
    for title, bullets, notes in ROADMAP_SLIDES[1:]:
        _bullet_slide(deck, title, bullets, notes)
    deck.save(str(path))
    _fix_zip_timestamps(path)


def _bullet_slide(deck, title: str, bullets: list[str], notes: str) -> None:
    slide = deck.slides.add_slide(deck.slide_layouts[1])
    slide.shapes.title.text = title
    frame = slide.placeholders[1].text_frame
    frame.text = bullets[0]
    for bullet in bullets[1:]:
        frame.add_paragraph().text = bullet
    slide.notes_slide.notes_text_frame.text = notes


OFFICE_MOVE_BODY = """Dear colleagues,

from Monday 15 July 2024 the Customer Support team works on the 4th floor of the Leipzig office, in rooms 4.01 to 4.12. The move itself takes place on Friday 12 July 2024: please pack your desk into the labelled boxes by 14:00 that day. The removal company takes care of monitors and docking stations; laptops and headsets you take home for the weekend.

The new meeting room on the 4th floor is called Elster and can be booked in Outlook from 15 July.

The attached parking guide explains the new rules for the courtyard, which apply from the same day.

Kind regards,
Greta Schulz
Facilities, Brightwater Analytics GmbH
"""
PARKING_PAGES = [
    ("Parking at the Leipzig office", [
        "The courtyard at Karl-Heine-Strasse 42 has 24 parking spaces and 6 charging points for "
        "electric cars. Spaces are not assigned to people; the first 4 spaces next to the entrance "
        "are reserved for visitors and must be kept free.",
        "Bicycles are parked in the covered bicycle room next to the courtyard gate, which your "
        "access badge opens.",
    ]),
    ("Permits and charging", [
        "A monthly parking permit is EUR 45.",
        "Permits are booked in PeopleHub by the 25th of the previous month, and the fee is deducted "
        "from your salary.",
        "Charging is free for company cars. Private electric cars pay EUR 0.35 per kWh, billed "
        "with the parking permit.",
    ]),
]


def _parking_pdf() -> bytes:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    font = _pick_font(pdf)
    pdf.set_title("Parking guide, Leipzig office")
    pdf.set_author("Facilities, " + COMPANY)
    pdf.set_creator("samples/source/make_samples.py")
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_margins(22, 20, 22)
    for heading, paragraphs in PARKING_PAGES:
        pdf.add_page()
        pdf.set_font(font, "B", 16)
        pdf.multi_cell(0, 9, heading, new_x="LMARGIN", new_y="NEXT", align="L")
        pdf.ln(3)
        pdf.set_font(font, "", 11)
        for text in paragraphs:
            pdf.multi_cell(0, 6, text, new_x="LMARGIN", new_y="NEXT", align="L")
            pdf.ln(3)
    return bytes(pdf.output())


def make_office_move_mail(path: Path) -> None:
    from email.message import EmailMessage
    from email.policy import SMTP

    msg = EmailMessage()
    msg["From"] = "Greta Schulz <facilities@brightwater.example>"
    msg["To"] = "All staff Leipzig <leipzig@brightwater.example>"
    msg["Date"] = "Mon, 03 Jun 2024 09:30:00 +0200"
    msg["Subject"] = "Office move: Customer Support moves to the 4th floor"
    msg["Message-ID"] = "<office-move-2024@brightwater.example>"
    msg.set_content(OFFICE_MOVE_BODY)
    msg.add_attachment(_parking_pdf(), maintype="application", subtype="pdf", filename="parking-guide.pdf")
    msg.set_boundary("==brightwater-sample-office-move==")
    path.write_bytes(msg.as_bytes(policy=SMTP))


def _fix_zip_timestamps(path: Path, core_modified: bool = False) -> None:
    """Rewrite an Office archive with fixed entry dates so regeneration is byte-stable
    (`core_modified`: also the save time openpyxl writes into docProps/core.xml)."""
    import re
    import zipfile

    with zipfile.ZipFile(path) as src:
        entries = [(info, src.read(info.filename)) for info in src.infolist()]
    if core_modified:
        stamp = FIXED_DATE.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
        entries = [
            (info, re.sub(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)", rb"\g<1>" + stamp + rb"\g<2>", data)
             if info.filename == "docProps/core.xml" else data)
            for info, data in entries
        ]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info, data in entries:
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED_DATE.timetuple()[:6])
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            dst.writestr(fixed, data)


# ---------------------------------------------------------------------------
# A scanned notice: a PDF page that is only an image (no text layer), so its
# answer can only be found by OCR.
# ---------------------------------------------------------------------------

SCAN_TITLE = "Facilities notice: visitor car park closed"
SCAN_LINES = [
    "Brightwater Analytics GmbH - Facilities",
    "Notice to all staff, Leipzig office, 26 February 2024",
    "",
    "Visitor car park closed for resurfacing",
    "",
    "The visitor car park in the courtyard is closed from 4 March",
    "to 15 March 2024 while it is resurfaced.",
    "During the closure, visitors park in the Ostring garage (level P3).",
    "Reception hands out free exit tickets for the garage.",
    "Bicycle racks near the main entrance stay open.",
    "",
    "Questions: facilities@brightwater-analytics.example",
    "Signed: Greta Schulz, Facilities",
]


def make_scanned_notice(path: Path) -> None:
    """A one-page 'scan' at 200 DPI: text drawn on an image, slightly rotated and speckled, saved
    as an image-only PDF (Pillow writes the page as one JPEG image)."""
    import random

    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    dpi = 200
    width, height = int(8.27 * dpi), int(11.69 * dpi)  # A4
    page = Image.new("L", (width, height), 250)
    draw = ImageDraw.Draw(page)
    try:
        font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf", 40)
        bold = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf", 48)
    except OSError:
        font = bold = ImageFont.load_default(size=40)
    y = 220
    for i, line in enumerate(SCAN_LINES):
        draw.text((180, y), line, fill=25, font=bold if i in (0, 3) else font)
        y += 64 if line else 40
    rng = random.Random(7)  # fixed speckles: regeneration is byte-stable
    for _ in range(2500):
        x, yy = rng.randrange(width), rng.randrange(height)
        page.putpixel((x, yy), rng.choice((120, 160, 200)))
    page = page.rotate(0.4, resample=Image.BICUBIC, fillcolor=250).filter(ImageFilter.GaussianBlur(0.6))
    page.save(
        path, "PDF", resolution=dpi, title=SCAN_TITLE,
        creationDate=FIXED_DATE.timetuple(), modDate=FIXED_DATE.timetuple(),
    )


def main() -> None:
    make_handbook(SAMPLES / "employee-handbook.pdf")
    make_policy(SAMPLES / "it-security-policy.docx")
    make_licences(SAMPLES / "software-licences-2024.xlsx")
    make_roadmap(SAMPLES / "product-roadmap-2024.pptx")
    make_office_move_mail(SAMPLES / "office-move.eml")
    make_scanned_notice(SAMPLES / "scanned-facilities-notice.pdf")
    for name in ("employee-handbook.pdf", "it-security-policy.docx", "software-licences-2024.xlsx",
                 "product-roadmap-2024.pptx", "office-move.eml", "scanned-facilities-notice.pdf"):
        print(f"wrote {SAMPLES / name} ({(SAMPLES / name).stat().st_size} bytes)")


if __name__ == "__main__":
    main()
