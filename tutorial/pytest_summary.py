"""Lines that tests add to pytest's closing summary: what they counted (commands run, assertions made).

    summary_lines(request.config)["newman step05_config"] = "newman, step05_config: 5 requests, 21 assertions"

A line set again under the same key replaces the earlier one, so a test can keep a running total.
"""

PLUGIN_NAME = "tutorial-summary-lines"


class SummaryLines:
    def __init__(self):
        self.lines = {}

    def pytest_terminal_summary(self, terminalreporter):
        for line in self.lines.values():
            terminalreporter.write_line(line)


def summary_lines(config):
    """The session's dict of summary lines (key -> line), printed in order at the end of the run."""
    plugin = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if plugin is None:
        plugin = SummaryLines()
        config.pluginmanager.register(plugin, PLUGIN_NAME)
    return plugin.lines
