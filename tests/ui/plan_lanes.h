#pragma once
// The main window's tests: which lane of the shown plan is a device's.
#include "mainwindow.h"

namespace layerwise::ui::test {

// The index of device `key` ("0", "cpu", "host2/cpu") among the plan's lanes; -1 if none.
inline int laneOf(const MainWindow& w, const QString& key)
{
    const auto& devices = w.currentPlan().devices;
    for (int i = 0; i < devices.size(); ++i)
        if (devices[i].key == key)
            return i;
    return -1;
}

} // namespace layerwise::ui::test
