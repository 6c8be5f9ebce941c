r"""Serves a trained model: a drawing page that guesses live, and a TF Serving-style REST API.

  python serve.py --model_dir=runs/sample/model      # the run's best SavedModel
  python serve.py --saved_model=runs/sample/model/export/best/1700000000 --port=8080

Then open http://127.0.0.1:8501/ and draw, or ask the API (web.py says what it takes):

  curl -s -H 'Content-Type: application/json' \
      -d '{"instances": [[[[0, 50, 100], [0, 80, 0]]]]}' \
      http://127.0.0.1:8501/v1/models/quickdraw:predict
"""

import tf_env  # first: it sets up TensorFlow before its import

from absl import flags, logging  # noqa: E402

import classifier  # noqa: E402
import cli  # noqa: E402
import serving  # noqa: E402
import web  # noqa: E402

cli.define_flags(web.ServeConfig)
flags.DEFINE_string("model_dir", None, "A train_model.py model_dir: serves its best "
                    "SavedModel (by eval accuracy).")
flags.DEFINE_string("saved_model", None, "A SavedModel folder (model_dir/export/best/<n>).")
FLAGS = flags.FLAGS


def saved_model_path(model_dir, saved_model):
    if bool(model_dir) == bool(saved_model):
        raise cli.UserError("give exactly one of --model_dir and --saved_model")
    if saved_model:
        return saved_model
    exports = serving.export_dirs(model_dir)
    if not exports:
        raise cli.UserError(f"no SavedModel in {model_dir}/export/best: train it first "
                            f"(train_model.py exports at each evaluation)")
    return exports[-1]


def main():
    config = web.ServeConfig(**cli.from_flags(web.ServeConfig, FLAGS))
    path = saved_model_path(FLAGS.model_dir, FLAGS.saved_model)
    tf_env.setup()
    verbosity = logging.get_verbosity()
    if verbosity < 1:  # loading a SavedModel logs through absl at INFO
        logging.set_verbosity(logging.WARNING)
    model = classifier.from_saved_model(path)
    logging.set_verbosity(verbosity)
    model.classify_strokes([[[[0, 1], [0, 1]]]])  # warm-up: the first call traces the graph
    try:
        server = web.make_server(config, model)
    except OSError as e:
        raise cli.UserError(f"cannot listen on {config.host}:{config.port}: {e.strerror}")
    host, port = server.server_address[:2]
    logging.info("serving %s (%d classes) at http://%s:%d/ ; the API at "
                 "http://%s:%d/v1/models/%s:predict ; Ctrl-C stops", path,
                 len(model.classes), host, port, host, port, config.model_name)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    cli.run(main)
