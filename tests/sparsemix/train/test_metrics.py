import itertools
import math

import pytest
import torch

from sparsemix.train.metrics import classification_metrics, regression_metrics, roc_auc


def _pairwise_auc(scores, positive):
    pos = [s for s, p in zip(scores.tolist(), positive.tolist()) if p]
    neg = [s for s, p in zip(scores.tolist(), positive.tolist()) if not p]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_roc_auc_equals_the_pairwise_definition_with_ties():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 5, (60,), generator=g).float() / 4  # many ties
    positive = torch.rand(60, generator=g) < 0.4
    assert roc_auc(scores, positive) == pytest.approx(_pairwise_auc(scores, positive))
    assert roc_auc(torch.tensor([0.1, 0.2, 0.9]), torch.tensor([0, 0, 1])) == 1.0
    assert math.isnan(roc_auc(torch.rand(5), torch.zeros(5)))


def test_auc_comes_from_probabilities_not_hard_labels():
    # every prediction is class 0 (argmax), yet the ranking of class-1 probability is perfect
    probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])
    labels = torch.tensor([0, 0, 1, 1])
    m = classification_metrics(probs, labels, ["neg", "pos"])
    assert m["accuracy"] == 0.5 and m["roc_auc"] == 1.0
    assert m["per_class"]["pos"] == {"count": 2, "accuracy": 0.0, "roc_auc": 1.0}


def test_multiclass_macro_auc_and_regression_tolerance():
    probs = torch.eye(3)[[0, 1, 2, 2]] * 0.7 + 0.1
    m = classification_metrics(probs, torch.tensor([0, 1, 2, 1]))
    per = [m["per_class"][str(c)]["roc_auc"] for c in range(3)]
    assert m["roc_auc"] == pytest.approx(sum(per) / 3)
    r = regression_metrics(torch.tensor([0.5, 0.53, 0.6]), torch.tensor([0.5, 0.5, 0.5]), 0.04)
    assert r["accuracy"] == pytest.approx(2 / 3) and r["error_pct"] == pytest.approx(100 / 3)
    assert r["mse"] == pytest.approx((0.03 ** 2 + 0.1 ** 2) / 3, rel=1e-5)


def test_confident_binary_classifier_gets_its_true_auc_from_run_eval():
    """Logits so large that float32 softmax saturates to exactly 0/1: the AUC must still be the
    true one (ranked on float64 log-probabilities), per class and macro."""
    from sparsemix.tasks.base import TaskData
    from sparsemix.tasks.synthetic import SequenceDataset
    from sparsemix.train.inference import run_eval

    gen = torch.Generator().manual_seed(0)
    n = 400
    y = torch.randint(0, 2, (n,), generator=gen)
    margin = 40.0 + 20.0 * torch.rand(n, generator=gen, dtype=torch.float64)  # all saturate
    margin = torch.where(torch.rand(n, generator=gen) < 0.1, -margin, margin)  # 10% wrong
    score = torch.where(y == 1, margin, -margin)  # logit of class 1 minus logit of class 0
    assert (torch.stack([-score / 2, score / 2], 1).float().softmax(-1)[:, 1] == 1).sum() > 10
    true_auc = roc_auc(score, y == 1)
    assert 0.8 < true_auc < 0.99

    class Fixed(torch.nn.Module):  # returns the logits stored as the token id's row
        def forward(self, x):
            logits = torch.stack([-score / 2, score / 2], 1).float()
            return logits[x[:, 0]]

    x = torch.arange(n).unsqueeze(1)  # [n, 1] token = sample index
    task = TaskData(train=None, val=None, test=SequenceDataset(x, y), kind="classification",
                    num_classes=2, input="tokens", max_len=1, vocab_size=n)
    metrics, _ = run_eval(Fixed(), task.test, task, 64, torch.device("cpu"))
    assert metrics["roc_auc"] == pytest.approx(true_auc, abs=1e-3)
    for c in ("0", "1"):
        assert metrics["per_class"][c]["roc_auc"] == pytest.approx(true_auc, abs=1e-3)


def test_undefined_auc_is_null_with_a_reason_and_valid_json():
    import json

    m = classification_metrics(torch.tensor([[0.9, 0.1]]), torch.tensor([0]))
    assert m["roc_auc"] is None and "two classes" in m["roc_auc_note"]
    assert m["per_class"]["1"]["accuracy"] is None
    json.dumps(m, allow_nan=False)
