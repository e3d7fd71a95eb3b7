"""Seeded generator of legitimate e-mail bodies: held-out text from outside the spam model's domain.

Why: the shipped spam model is trained on SMS messages. To check that de-spam notices when it is
applied to text of another kind (and to measure what it would do there), tests need legitimate
e-mail. No installed package ships an e-mail ham corpus (scikit-learn's 20 newsgroups and the
Enron/SpamAssassin corpora need a download, and nothing here may use the network), so this
module writes realistic business and personal e-mail bodies from templates: greeting, two to
five paragraphs, sign-off and signature (with a phone number, as real signatures have), and now
and then a quoted earlier message or a legal footer; and, as a real inbox has, a share of
legitimate automated mail (order and delivery notices, account alerts, newsletters the reader
subscribed to, appointment reminders). All of them are ham.
"""

from __future__ import annotations

import numpy as np

__all__ = ["generate_mail_bodies"]

_FIRST = ("Anna", "Ben", "Chloe", "David", "Elena", "Farid", "Grace", "Hiro", "Isabel", "James",
          "Kofi", "Laura", "Marco", "Nadia", "Oliver", "Priya", "Quentin", "Rosa", "Sam", "Tomas")
_LAST = ("Adler", "Brennan", "Castillo", "Dubois", "Eriksen", "Fischer", "Gupta", "Hartley",
         "Ivanova", "Jensen", "Kowalski", "Lindqvist", "Moreau", "Novak", "O'Neill", "Petrov")
_COMPANY = ("Northwind Logistics", "Bluefield Analytics", "Harbor & Pine LLP", "Kestrel Labs",
            "Meridian Health Partners", "Oakridge Manufacturing", "Sable Street Books",
            "Tidewater Engineering", "Vantage Property Group", "Willow Creek School District")
_TITLE = ("Project Manager", "Senior Accountant", "Operations Lead", "Software Engineer",
          "HR Business Partner", "Account Executive", "Research Scientist", "Office Manager",
          "Procurement Specialist", "Head of Customer Success")
_TOPIC = ("the Q3 budget review", "the vendor contract renewal", "next week's site visit",
          "the onboarding plan for the new hires", "the migration to the new billing system",
          "the draft of the annual report", "the board presentation", "the warehouse audit",
          "the customer feedback survey", "the spring fundraising event")
_DAY = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
_GREETING = ("Hi {to},", "Hello {to},", "Dear {to},", "Good morning {to},", "{to},",
             "Hi team,", "Hello everyone,", "Dear Ms. {to_last},", "Dear Mr. {to_last},")
_OPENERS = (
    "I hope this message finds you well.",
    "Thanks for getting back to me so quickly yesterday.",
    "Following up on our conversation during {day}'s meeting about {topic}.",
    "I wanted to give you a short update on {topic}.",
    "Apologies for the delay in replying; last week was busier than expected.",
    "As promised, here are my notes from the call about {topic}.",
    "Quick question about {topic} before I send anything to the client.",
)
_PARAGRAPHS = (
    "We have reviewed the figures you sent over and most of them line up with our records. "
    "There are two invoices from March that appear twice in the spreadsheet, so the total is "
    "about {amount} higher than it should be. Could you double-check those lines on your side?",
    "The team agreed to move the deadline for {topic} to {day} the {date}th, which gives us "
    "enough time to incorporate the comments from legal. I have updated the shared project plan "
    "and flagged the tasks that depend on the new date.",
    "I attached the revised version of the document with tracked changes. Most edits are small "
    "wording fixes, but section 4 now describes the approval process in more detail because "
    "several people found the previous description confusing.",
    "Would {day} at {hour}:30 work for a thirty-minute call? If not, feel free to suggest another "
    "slot that suits you; my calendar is fairly open after Wednesday afternoon.",
    "Our facilities team confirmed that the conference room on the third floor is booked for "
    "the whole afternoon. Parking is available in the visitor area behind the main building, "
    "and reception will have badges ready for everyone on the list.",
    "Regarding the contract, our lawyers asked for a clarification of the termination clause. "
    "They would like the notice period stated in calendar days rather than business days, "
    "which I do not expect to be a problem for your side.",
    "The new reporting dashboard is now live for the finance department. Please let me know "
    "if any of the numbers look wrong, or if there is a view you would find useful that we "
    "have not built yet.",
    "I spoke with the supplier this morning. They can deliver the remaining {units} units by the "
    "end of the month, although the shipment will arrive in two parts because of a shortage of "
    "packaging material at their plant.",
    "Thank you again for hosting us last week. The students really enjoyed the tour of the lab, "
    "and several of them have asked whether the summer internship programme will run again "
    "this year.",
    "For the reimbursement, please submit your receipts through the expenses portal by the "
    "{date}th. Travel booked before the policy change is still covered at the old rates.",
    "Mum says the garden is finally coming back to life after the frost, and the tomatoes you "
    "planted in April are already taller than the fence. We should plan a weekend visit soon.",
    "The IT department will apply security updates to all laptops on {day} evening. Please "
    "save your work and leave your computer connected to power and the office network before "
    "you go home.",
    "I have gone through the candidate shortlist for the analyst position. Three people stand "
    "out, and I would suggest we invite them for a second interview with the wider team.",
    "Attached you will find the minutes of the last meeting. Action items are listed at the "
    "end with the owner and the agreed due date next to each one.",
)
_CLOSERS = (
    "Let me know if you have any questions.",
    "Happy to discuss any of this in more detail.",
    "Thanks in advance for your help.",
    "Looking forward to hearing from you.",
    "Please feel free to call me if anything is unclear.",
)
_SIGNOFF = ("Best regards,", "Kind regards,", "Thanks,", "Best,", "Cheers,", "Many thanks,",
            "Sincerely,")
_FOOTER = ("This e-mail and any attachments are confidential and intended solely for the "
           "addressee. If you have received it in error, please notify the sender and delete "
           "it. {company} accepts no liability for any damage caused by this message.")

_TRANSACTIONAL = (
    "Hi {to},\n\nThank you for your order #{order}! We have received your payment of {amount} "
    "and your items will ship within 2 business days. You can track your parcel at any time "
    "from the Orders page of your account.\n\nNeed help? Call our customer service team free "
    "on 0800 {d3} {d4} or reply to this e-mail.\n\nThe {company} team",
    "Your parcel is on its way! Order #{order} was dispatched today and should arrive on "
    "{day}. Tracking number: 1Z{order}{d4}. If nobody is home, the driver will leave a card "
    "with instructions to rearrange delivery.\n\nTo stop receiving delivery updates by e-mail, "
    "change your notification settings.",
    "Security alert: a new sign-in to your account was detected on {day} from a Windows "
    "device. If this was you, you don't need to do anything. If not, please reset your "
    "password now and review your recent activity.\n\nThis is an automated message from "
    "{company}; please do not reply.",
    "Reminder: your appointment with Dr. {to_last} is on {day} at {hour}:15. Please arrive 10 "
    "minutes early and bring your insurance card. To cancel or reschedule, call {phone} at "
    "least 24 hours in advance.",
    "This week at {company}: our winter sale starts now with up to 30% off selected items, "
    "plus free delivery on orders over {amount}. Members get early access to new arrivals "
    "- log in to see your offers.\n\nYou are receiving this newsletter because you "
    "subscribed on our website. Unsubscribe at any time using the link below.",
    "Your monthly statement is ready. Balance: {amount}. Payment due: {day} the {date}th. "
    "View your statement and pay online in the app, or set up automatic payments so you "
    "never miss a due date.\n\nQuestions? Call us on {phone}.",
)


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(0, len(options)))]


def _fill(rng: np.random.Generator, text: str, **names: str) -> str:
    return text.format(
        topic=_pick(rng, _TOPIC), day=_pick(rng, _DAY), date=str(int(rng.integers(2, 28))),
        hour=str(int(rng.integers(9, 17))), units=str(int(rng.integers(40, 900))),
        amount=f"${int(rng.integers(200, 9000)):,}", order=str(int(rng.integers(10**6, 10**7))),
        d3=str(int(rng.integers(100, 999))), d4=str(int(rng.integers(1000, 9999))),
        phone=_phone(rng), **names)


def _phone(rng: np.random.Generator) -> str:
    return f"+1 ({int(rng.integers(201, 989))}) 555-{int(rng.integers(1000, 9999))}"


def generate_mail_bodies(n: int, seed: int = 0) -> list[str]:
    """``n`` legitimate e-mail bodies (plain text), deterministic for a ``seed``."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    for _ in range(n):
        sender = f"{_pick(rng, _FIRST)} {_pick(rng, _LAST)}"
        to, to_last = _pick(rng, _FIRST), _pick(rng, _LAST)
        company = _pick(rng, _COMPANY)
        names = {"to": to, "to_last": to_last, "company": company}
        if rng.random() < 0.3:
            out.append(_fill(rng, _pick(rng, _TRANSACTIONAL), **names))
            continue
        parts = [_fill(rng, _pick(rng, _GREETING), **names), _fill(rng, _pick(rng, _OPENERS))]
        k = int(rng.integers(2, 6))
        for i in rng.choice(len(_PARAGRAPHS), size=k, replace=False):
            parts.append(_fill(rng, _PARAGRAPHS[int(i)]))
        parts.append(_pick(rng, _CLOSERS))
        sig = [_pick(rng, _SIGNOFF), sender]
        if rng.random() < 0.8:
            sig += [f"{_pick(rng, _TITLE)} | {company}", f"Tel: {_phone(rng)}"]
        parts.append("\n".join(sig))
        if rng.random() < 0.3:
            quoted = _fill(rng, _PARAGRAPHS[int(rng.integers(0, len(_PARAGRAPHS)))])
            parts.append(f"On {_pick(rng, _DAY)}, {to} {to_last} wrote:\n> {quoted}")
        if rng.random() < 0.25:
            parts.append(_FOOTER.format(company=company))
        out.append("\n\n".join(parts))
    return out
