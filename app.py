"""LLM Safety Landscape Explorer: the Streamlit entry point (a router).

Run with `make run`. Pages read the store and submit jobs; the sweep itself runs in a
separate worker process, never in this script thread.
"""

import streamlit as st

from landscape_core.errors import UserError
from landscape_core.supervisor import ensure_running
from pages.common import md_text, show_user_error, store, store_root

st.set_page_config(page_title="Safety Landscape Explorer", page_icon="🗺️", layout="wide")

pages = [
    st.Page("pages/launch_page.py", url_path="launch", title="Launch", icon="🚀", default=True),
    st.Page("pages/jobs_page.py", url_path="jobs", title="Jobs", icon="⏳"),
    st.Page("pages/landscape_page.py", url_path="landscape", title="Landscape", icon="🗺️"),
    st.Page("pages/compare_page.py", url_path="compare", title="Compare", icon="⚖️"),
    st.Page("pages/generations_page.py", url_path="generations", title="Generations", icon="📝"),
]
navigation = st.navigation(pages)

with st.sidebar:
    st.caption(f"Data directory: {md_text(store_root())}")
    pid = ensure_running(store())
    if pid is None:
        st.caption("Worker: none (the store is read-only: browse only)")
    else:
        st.caption(f"Worker: running (pid {pid})")

try:
    navigation.run()
except UserError as exc:  # e.g. the store replaced by a file that is not one
    show_user_error(exc)
