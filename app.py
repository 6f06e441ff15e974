"""LLM Safety Landscape Explorer: the Streamlit entry point (a router).

Run with `make run`. Pages read the store and submit jobs; the sweep itself runs in a
separate worker process, never in this script thread.
"""

import time

import streamlit as st

from landscape_core.errors import UserError
from landscape_core.supervisor import ensure_running
from pages.common import md_text, show_user_error, store, store_root, worker_caption

st.set_page_config(
    page_title="Safety Landscape Explorer", page_icon=":material/map:", layout="wide"
)

# Material icons: emoji showed as empty boxes in browsers without an emoji font
PAGES = {  # url path -> (title, icon); each page is pages/<url path>_page.py
    "start": ("Start", "home"),
    "launch": ("Launch", "rocket_launch"),
    "jobs": ("Jobs", "pending_actions"),
    "landscape": ("Landscape", "landscape"),
    "compare": ("Compare", "compare"),
    "generations": ("Generations", "notes"),
    "answers": ("Answers", "rate_review"),
    "table": ("Table", "table_view"),
    "defence": ("Defence", "shield"),
    "risk": ("Finetuning risk", "warning"),
    "runs": ("Runs", "folder_managed"),
}
pages = {
    url: st.Page(f"pages/{url}_page.py", url_path=url, title=title, icon=f":material/{icon}:")
    for url, (title, icon) in PAGES.items()
}  # fmt: skip


def home() -> None:
    """The root URL opens Start (what the tool is, and the first run) at /start.

    The default page has no URL of its own: while Launch was the default, a link to
    /launch matched no page and showed "Page not found" before opening it.
    """
    st.switch_page(pages["start"])


navigation = st.navigation(
    [st.Page(home, title="Home", url_path="home", default=True, visibility="hidden"),
     *pages.values()]
)  # fmt: skip


# A worker starts on a page run (a click), never from the refreshing status line: that
# would restart an idle worker the moment it exits, under a new pid, while a tab is open.
read_only = ensure_running(store()) is None


@st.fragment(run_every="5s")  # only the worker's line reruns
def worker_status() -> None:
    if read_only:
        st.caption("Worker: none (the store is read-only: browse only)")
    else:
        st.caption(worker_caption(store().jobs.worker_state(), time.time()))


with st.sidebar:
    st.caption(f"Data directory: {md_text(store_root())}")
    worker_status()

try:
    navigation.run()
except UserError as exc:  # e.g. the store replaced by a file that is not one
    show_user_error(exc)
