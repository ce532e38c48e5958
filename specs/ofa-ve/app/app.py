"""OFA-VE: visual entailment with ModelScope's OFA pipeline behind a Gradio UI.

Given an image (the premise) and a sentence (the hypothesis), the model says
whether the image entails the sentence (YES), contradicts it (NO) or neither
(MAYBE). The model snapshot is part of the image (under MODELSCOPE_CACHE), so
the pipeline loads it with the hub never asked; it is loaded on the first
request, so that the page is up at once.
"""

import os
import threading

import gradio as gr

MODEL_ID = "iic/ofa_visual-entailment_snli-ve_large_en"
LABELS = {"yes": "YES", "no": "NO", "maybe": "MAYBE"}

_pipeline = None
_lock = threading.Lock()


def model_dir() -> str:
    """Where ModelScope's client keeps the snapshot: MODELSCOPE_CACHE/ID
    (its default without the variable is ~/.cache/modelscope/hub/ID)."""
    cache = os.environ.get("MODELSCOPE_CACHE")
    if cache is None:
        cache = os.path.expanduser("~/.cache/modelscope/hub")
    return os.path.join(cache, MODEL_ID)


def entailment_pipeline():
    """The ModelScope pipeline, built once, from the local snapshot only."""
    global _pipeline
    with _lock:
        if _pipeline is None:
            from modelscope.pipelines import pipeline
            from modelscope.utils.constant import Tasks

            device = "gpu" if _cuda_available() else "cpu"
            _pipeline = pipeline(Tasks.visual_entailment, model=model_dir(), device=device)
        return _pipeline


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def predict(image, hypothesis: str):
    if image is None or not hypothesis or not hypothesis.strip():
        return "Give an image and a sentence."
    try:
        result = entailment_pipeline()({"image": image, "text": hypothesis.strip()})
    except Exception as err:  # shown in the UI, not a crash of the server
        return f"The model could not run: {type(err).__name__}: {err}"
    label = result.get("labels", [""])[0] if isinstance(result, dict) else str(result)
    key = str(label).strip().lower()
    return LABELS.get(key, str(label))


def build_ui() -> gr.Blocks:
    with gr.Blocks(title="OFA Visual Entailment") as ui:
        gr.Markdown(
            "# OFA Visual Entailment\n"
            "Does the image entail the sentence? **YES**, **NO** or **MAYBE**."
        )
        with gr.Row():
            image = gr.Image(type="pil", label="Image (premise)")
            with gr.Column():
                text = gr.Textbox(label="Sentence (hypothesis)", lines=2)
                button = gr.Button("Predict", variant="primary")
                answer = gr.Textbox(label="Answer", interactive=False)
        button.click(predict, inputs=[image, text], outputs=answer)
    return ui


if __name__ == "__main__":
    build_ui().launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        show_error=True,
    )
