"""Lines that tests add to pytest's closing summary: what they counted (commands run, assertions made).

    summary_lines(request.config)["newman step05_config"] = "newman, step05_config: 5 requests, 21 assertions"

A line set again under the same key replaces the earlier one. Counts that several tests add to (perhaps in
several pytest-xdist workers) are summed instead:

    summary_count(request.config, "transcripts", "README transcripts: {commands} commands in {blocks} blocks",
                  commands=3, blocks=1)

Under pytest-xdist what a test set travels in its report to the controller, which prints it.
"""
import pytest

PLUGIN_NAME = "tutorial-summary-lines"
PROPERTY = "tutorial-summary-line"
COUNT_PROPERTY = "tutorial-summary-count"


class SummaryLines:
    def __init__(self):
        self.lines = {}
        self.sent = {}
        self.pending = []  # (key, template, counts) added by the running test
        self.totals = {}  # key -> (template, summed counts)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        if call.when == "teardown":
            for key, line in self.lines.items():
                if self.sent.get(key) != line:
                    report.user_properties.append((PROPERTY, (key, line)))
                    self.sent[key] = line
            report.user_properties += [(COUNT_PROPERTY, added) for added in self.pending]
            self.pending = []
        return report

    def pytest_runtest_logreport(self, report):
        if report.when == "teardown":
            for name, value in report.user_properties:
                if name == PROPERTY:
                    key, line = value
                    self.lines[key] = line
                elif name == COUNT_PROPERTY:
                    key, template, counts = value
                    _, totals = self.totals.setdefault(key, (template, dict.fromkeys(counts, 0)))
                    for count, number in counts.items():
                        totals[count] = totals.get(count, 0) + number

    def pytest_terminal_summary(self, terminalreporter):
        for line in self.lines.values():
            terminalreporter.write_line(line)
        for template, totals in self.totals.values():
            terminalreporter.write_line(template.format(**totals))


def _plugin(config):
    plugin = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if plugin is None:
        plugin = SummaryLines()
        config.pluginmanager.register(plugin, PLUGIN_NAME)
    return plugin


def summary_lines(config):
    """The session's dict of summary lines (key -> line), printed in order at the end of the run."""
    return _plugin(config).lines


def summary_count(config, key, template, **counts):
    """Add counts to the line `key`, printed as template.format(**summed counts)."""
    _plugin(config).pending.append((key, template, counts))
