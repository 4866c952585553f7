"""Scoring a model: decoding, sacreBLEU and chrF, teacher-forced loss and calibration, attention."""
