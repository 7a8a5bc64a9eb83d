#include "chatpage.h"

#include "chatview.h"
#include "conversationstore.h"
#include "placementmap.h"

namespace layerwise::ui {

ChatPage::ChatPage(QWidget* parent) : QSplitter(Qt::Vertical, parent)
{
    setObjectName(QStringLiteral("chatPage"));
    m_chat = new ChatView(ConversationStore(), this);
    m_chat->setObjectName(QStringLiteral("chat"));
    m_placement = new PlacementMap(this);
    m_placement->setObjectName(QStringLiteral("chatPlacement"));
    m_placement->setAcceptDrops(false);
    m_placement->setMinimumHeight(90);
    m_placement->setToolTip(tr("Where each layer is and what it is doing while the model answers "
                               "(move layers in the Plan tab)"));
    addWidget(m_chat);
    addWidget(m_placement);
    setStretchFactor(0, 1);
    setSizes({640, 150});
}

} // namespace layerwise::ui
