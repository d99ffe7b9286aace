"""The pipeline's stages after the search, one module per `medseg-nas` subcommand:
retrain → evaluate → export → report, `predict` for new scans and `pipeline` (`run`) for the
whole job. Each exposes `add_arguments(parser)` and `main(args) -> int` for `medseg_nas.cli`.
"""
