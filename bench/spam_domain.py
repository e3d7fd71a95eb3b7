"""De-spam's domain check, measured: the shipped-SMS-corpus model on in-domain and e-mail text.

Run: ``.venv/bin/python bench/spam_domain.py`` (trains the model, ~5 s; prints one row per text
set: texts, share blocked as spam, length-outside share, OOV rate, shift, its lower bound, and
what de-spam does with the defaults domain_warn=0.1, domain_limit=0.5).
"""

from __future__ import annotations

import pyarrow as pa

from headwater.steps.clean import CleanStep
from headwater.steps.despam import DespamParams, DespamStep
from headwater.steps.sample import generate_users
from headwater.steps.sample_mail import generate_mail_bodies
from headwater.steps.spam_model import group_split, load_sms_spam, train_spam_model


def main() -> None:
    corpus = load_sms_spam()
    texts, labels = corpus["text"].to_pylist(), corpus["label"].to_pylist()
    model = train_spam_model(texts, labels)
    test = group_split(texts, 0.25, 0)
    sets = {
        "SMS held-out ham": [t for t, m, y in zip(texts, test, labels, strict=True)
                             if m and y == 0],
        "generated sign-ups (10k, seed 11)": CleanStep().run_table(
            generate_users(n_records=10_000, seed=11)).output["signup_text"].to_pylist(),
        "generated e-mail bodies (2k, seed 0)": generate_mail_bodies(2000, seed=0),
    }
    print("| text | texts | blocked as spam | length outside band | OOV rate | shift | "
          "shift lower | default outcome |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, ts in sets.items():
        res = DespamStep(DespamParams(force=True), model=model).run_table(
            pa.table({"signup_text": pa.array(ts, pa.string())}))
        d = res.stats["domain"]
        outcome = ("fails (OutOfDomainText)" if d["over_limit"] else
                   "warning in stats" if "warning" in d else "passes")
        blocked = res.stats["rows_spam"] / res.stats["rows_in"]
        print(f"| {name} | {d['texts']:,} | {blocked:.1%} | {d['outside_length_share']:.1%} | "
              f"{d['oov_rate']:.1%} (training {d['training_oov_rate']:.1%}) | {d['shift']:.3f} | "
              f"{d['shift_lower']:.3f} | {outcome} |")


if __name__ == "__main__":
    main()
