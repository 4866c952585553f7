"""The run record's names: what the trainer writes is what the report reads, today's stores and
older ones alike."""

from ablab.trainer.tracking import older_stores, record


def test_final_metrics_are_named_by_phase_each_once():
    metrics = {
        "bleu": 28.1,
        "bleu_lc": 28.4,
        "chrf": 50.2,
        "ece": 0.023,
        "test_nll": 2.79,
        "test_tokens": 15300,
        "test_2016_flickr/bleu": 28.1,
        "test_2017_flickr/bleu": 25.0,
        "params": 6001664,
        "mfu": None,  # unknown: not logged
        "status": "finished",  # not a number: not logged
    }
    logged = record.final_record(metrics, "test_2016_flickr")
    assert logged == {
        "test/test_2016_flickr/bleu": 28.1,
        "test/test_2016_flickr/bleu_lc": 28.4,
        "test/test_2016_flickr/chrf": 50.2,
        "test/test_2016_flickr/ece": 0.023,
        "test/test_2016_flickr/nll": 2.79,
        "test/test_2016_flickr/tokens": 15300,
        "test/test_2017_flickr/bleu": 25.0,
        "run/params": 6001664,
    }
    back = record.summary(logged, "test_2016_flickr")
    assert back["bleu"] == 28.1 and back["test_nll"] == 2.79 and back["params"] == 6001664


def test_an_older_store_reads_the_same():
    old = {"bleu": 10.6, "ece": 0.017, "params": 6001664.0, "train_loss": 3.2, "val_bleu": 9.0, "epochs": 4.0}
    back = record.summary(old, "test_2016_flickr")
    assert (back["bleu"], back["ece"], back["params"], back["epochs"]) == (10.6, 0.017, 6001664.0, 4.0)
    assert "train_loss" not in back and "val_bleu" not in back  # curves, not final metrics
    assert (
        older_stores.RENAMED["train_loss"] == "train/loss" and older_stores.RENAMED["val_bleu"] == "val/bleu"
    )


def test_curves_carry_the_epoch_beside_them():
    assert record.train_record({"train_loss": 3.0, "train_nll": 2.8, "lr": 1e-3, "step_flops": 1e9}, 1.5) == {
        "train/loss": 3.0,
        "train/nll": 2.8,
        "train/lr": 1e-3,
        "epoch": 1.5,
    }
    assert record.validation_record({"val_loss": 2.5, "val_bleu": 20.0}, 2.0) == {
        "val/loss": 2.5,
        "val/bleu": 20.0,
        "epoch": 2.0,
    }


def test_links_open_the_model_training_view():
    assert record.ui_link("sqlite:////x/mlflow.db", "3") == (
        "http://127.0.0.1:5000/#/experiments/3/runs?workflowType=machine_learning"
    )
    assert record.ui_link("http://tracking:5000/", "3", "abc", "report/report.html") == (
        "http://tracking:5000/#/experiments/3/runs/abc/artifacts/report/report.html?workflowType=machine_learning"
    )


def test_sample_translations_read_back_as_they_were_written():
    text = record.samples_text(["A dog.", "Two cats."], ["Ein Hund.", "Zwei Katzen."], ["Hund.", ""], 20)
    assert text.startswith("[0] SRC: A dog.\n    REF: Ein Hund.\n    HYP: Hund.\n")
    assert record.read_samples(text) == [
        {"source": "A dog.", "reference": "Ein Hund.", "hypothesis": "Hund."},
        {"source": "Two cats.", "reference": "Zwei Katzen.", "hypothesis": ""},
    ]
