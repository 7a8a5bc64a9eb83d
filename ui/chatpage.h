#pragma once
// The Chat tab: the chat over a compact placement map that shows the layers at work while the
// model answers (read-only: layers are moved in the Plan tab).
#include <QSplitter>


namespace layerwise::ui {

class ChatView;
class PlacementMap;

class ChatPage : public QSplitter {
    Q_OBJECT
public:
    explicit ChatPage(QWidget* parent = nullptr);
    ChatView* chatView() const { return m_chat; }
    PlacementMap* placementMap() const { return m_placement; }

private:
    ChatView* m_chat = nullptr;
    PlacementMap* m_placement = nullptr;
};

} // namespace layerwise::ui
